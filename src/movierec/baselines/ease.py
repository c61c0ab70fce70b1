"""EASE: the closed-form shallow autoencoder of Steck (2019)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix


class EASE:
    """Embarrassingly Shallow AutoEncoder (Steck, WWW 2019).

    Learns an item-item weight matrix B with a zero diagonal minimising
    ``||X - XB||² + λ||B||²``. The solution is closed-form: with
    ``P = (XᵀX + λI)⁻¹``, ``B = I - P · diag(1 / diag(P))``, diagonal then zeroed.
    The cost is one dense inversion of an items-by-items matrix, so the catalogue is
    capped at the ``max_items`` most popular items (others are never recommended).
    """

    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 20_000):
        self.l2 = l2
        self.max_items = max_items
        self.weights_: np.ndarray | None = None
        self.kept_: np.ndarray | None = None
        self.n_items_ = 0

    def fit(self, data: InteractionMatrix) -> "EASE":
        """Solve for B on the (capped) catalogue."""
        counts = data.item_counts()
        self.n_items_ = data.n_items
        kept = np.sort(np.argsort(-counts, kind="stable")[: self.max_items])
        x = data.matrix[:, kept]
        dtype = np.float64 if kept.size <= 8_000 else np.float32
        gram = (x.T @ x).toarray().astype(dtype)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = precision / (-np.diag(precision))[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)
        self.kept_ = kept
        return self

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Reconstruction ``x_u · B``; items outside the capped catalogue get ``-inf``."""
        scores = np.full((history.shape[0], self.n_items_), -np.inf, dtype=np.float32)
        scores[:, self.kept_] = history[:, self.kept_] @ self.weights_
        return scores

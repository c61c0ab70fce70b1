"""EASE (Steck 2019), plain and with the user's row weighted by recency.

Both variants share one eigendecomposition, so tuning λ over a grid costs one
decomposition plus one scoring pass per value, instead of one dense inversion per value.
With the Gram matrix ``G = XᵀX = V diag(s) Vᵀ`` over its ``r`` non-zero eigenpairs
(``V`` is ``n × r``), the precision at ``λ`` is

    ``P = (G + λI)⁻¹ = V diag(1/(s + λ) - 1/λ) Vᵀ + I/λ``

and the EASE weights are ``B = I - P diag(1 / diag(P))``, whose diagonal is zero by
construction. A user row ``x`` is scored as ``x B = x - (x P) / diag(P)`` without forming
``B`` or ``P``. When there are fewer users than items, the eigenpairs come from the
smaller ``XXᵀ = Q diag(s) Qᵀ`` with ``V = XᵀQ diag(s^-1/2)``, so a catalogue of tens of
thousands of items costs a decomposition of the users' side only. (A full dense
eigendecomposition is many times slower than an inversion of the same size on a CPU;
this is what makes sharing it pay.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

import movierec.baselines.base as base
from movierec.data.matrix import InteractionMatrix

_RANK_TOL = 1e-9  # eigenvalues below this share of the largest are treated as zero


@dataclass(frozen=True)
class GramEigen:
    """The non-zero eigenpairs of the (capped) catalogue's Gram matrix ``XᵀX``.

    Attributes:
        values: eigenvalues ``s`` (positive), shape ``(r,)``.
        vectors: orthonormal eigenvectors ``V``, shape ``(n, r)``.
        kept: catalogue indices of the items the decomposition covers (the ``max_items``
            most popular, sorted).
        n_items: size of the whole catalogue.
    """

    values: np.ndarray
    vectors: np.ndarray
    kept: np.ndarray
    n_items: int

    @classmethod
    def from_data(cls, data: InteractionMatrix, max_items: int) -> GramEigen:
        """Decompose ``XᵀX`` over the ``max_items`` most popular items of ``data``."""
        counts = data.item_counts()
        kept = np.sort(np.argsort(-counts, kind="stable")[:max_items])
        x = data.matrix[:, kept].tocsr()
        n_users, n = x.shape
        dtype = np.float64 if min(n, n_users) <= 8_000 else np.float32
        if n <= n_users:
            gram = (x.T @ x).toarray().astype(dtype)
            values, vectors = scipy.linalg.eigh(gram, overwrite_a=True, check_finite=False, driver="evd")
        else:
            outer = (x @ x.T).toarray().astype(dtype)
            values, q = scipy.linalg.eigh(outer, overwrite_a=True, check_finite=False, driver="evd")
            keep = values > _RANK_TOL * max(float(values.max(initial=0.0)), 1.0)
            values, q = values[keep], q[:, keep]
            vectors = np.asarray(x.T.astype(dtype) @ q) / np.sqrt(values)[None, :]
        keep = values > _RANK_TOL * max(float(values.max(initial=0.0)), 1.0)
        return cls(values[keep], np.ascontiguousarray(vectors[:, keep]), kept, data.n_items)

    def correction(self, l2: float) -> np.ndarray:
        """``1/(s + λ) - 1/λ``: the eigen-part of the precision beyond ``I/λ``."""
        return 1.0 / (self.values + float(l2)) - 1.0 / float(l2)

    def precision_diagonal(self, l2: float) -> np.ndarray:
        """``diag(P)`` at ``λ``."""
        return (self.vectors**2) @ self.correction(l2) + 1.0 / float(l2)

    def precision_rows(self, x: np.ndarray, l2: float, sparse: sp.csr_matrix | None = None) -> np.ndarray:
        """``x P`` for dense user rows ``x`` over the kept items (``sparse``: the same rows as
        CSR, which projects them onto the eigenvectors at the cost of their few entries
        rather than of every item: a user touches a handful of a large catalogue's items)."""
        projected = (sparse if sparse is not None else x) @ self.vectors
        return (np.asarray(projected) * self.correction(l2)) @ self.vectors.T + x / float(l2)

    def weights(self, l2: float) -> np.ndarray:
        """The dense EASE matrix ``B`` at ``λ`` (float32), for export."""
        precision = (self.vectors * self.correction(l2)) @ self.vectors.T
        precision[np.diag_indices_from(precision)] += 1.0 / float(l2)
        weights = -precision / np.diag(precision)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        return weights.astype(np.float32)


def capped_catalogue(data: InteractionMatrix, max_items: int) -> dict[str, Any] | None:
    """What capping the catalogue at ``max_items`` leaves out, for the reports; None when the
    whole catalogue fits.

    Above ``max_items`` EASE is an approximation: it is fitted on the ``max_items`` most
    popular items only and never recommends the others (a dense ``n x n`` decomposition of
    the whole catalogue would not fit in time or memory).
    """
    n = data.n_items
    if n <= max_items:
        return None
    counts = data.item_counts()
    kept = np.sort(counts)[::-1][:max_items]
    share = float(kept.sum() / max(counts.sum(), 1.0))
    return {
        "max_items": int(max_items),
        "catalogue": int(n),
        "events_covered": round(share, 4),
        "note": (
            f"approximated: fitted on the {max_items} most popular of {n} items, which hold "
            f"{share:.1%} of the known events; the other {n - max_items} items are never recommended by it"
        ),
    }


def pruned_weights(eigen: GramEigen, l2: float, keep: int, block: int = 2048) -> sp.csr_matrix:
    """EASE's ``B`` at ``λ`` over the whole catalogue, each column cut to its ``keep`` largest
    entries (by magnitude), as CSR. Built in column blocks, so the dense matrix never exists.

    Row ``i`` column ``j`` holds the weight of history item ``i`` in item ``j``'s score;
    items outside ``eigen.kept`` have empty rows and columns.
    """
    n = eigen.kept.size
    keep = max(1, min(keep, n - 1)) if n > 1 else 1
    diag = eigen.precision_diagonal(l2)
    scaled = eigen.vectors * eigen.correction(l2)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        precision = scaled @ eigen.vectors[start:stop].T  # (n, block)
        precision[np.arange(start, stop), np.arange(stop - start)] += 1.0 / float(l2)
        weights = -precision / diag[None, start:stop]
        weights[np.arange(start, stop), np.arange(stop - start)] = 0.0
        top = np.argpartition(-np.abs(weights), keep - 1, axis=0)[:keep] if n > 1 else np.zeros((1, stop - start), int)
        top_vals = np.take_along_axis(weights, top, axis=0)
        nz = top_vals != 0
        rows.append(eigen.kept[top[nz]])
        cols.append(eigen.kept[np.broadcast_to(np.arange(start, stop), top.shape)[nz]])
        vals.append(top_vals[nz].astype(np.float32))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(eigen.n_items, eigen.n_items),
        dtype=np.float32,
    )


def recency_weights(events_back: np.ndarray, tau: float | None) -> np.ndarray:
    """Weight ``exp(-n / τ)`` of an item ``n`` events before the user's last one (1 when τ is None)."""
    if tau is None:
        return np.ones_like(events_back, dtype=np.float64)
    return np.exp(-np.asarray(events_back, dtype=np.float64) / float(tau))


class EASE:
    """Embarrassingly Shallow AutoEncoder (Steck, WWW 2019).

    Learns an item-item weight matrix B with a zero diagonal minimising
    ``||X - XB||² + λ||B||²``, in closed form from the Gram matrix's eigendecomposition
    (see the module docstring). The catalogue is capped at the ``max_items`` most
    popular items (others are never recommended).

    With ``recency_tau`` set, B is the same but a user's row is weighted at scoring time:
    an item ``n`` events before the user's last one counts ``exp(-n / τ)``, so the
    recent past dominates the reconstruction. The history rows it scores then carry
    ``1 + n`` as values (see :meth:`movierec.evaluation.protocol.EvalSet.recency`).
    """

    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 20_000, recency_tau: float | None = None):
        self.l2 = float(l2)
        self.max_items = int(max_items)
        self.recency_tau = None if recency_tau is None else float(recency_tau)
        self.uses_recency = recency_tau is not None
        self.eigen_: GramEigen | None = None
        self._inverse_diag: np.ndarray | None = None
        self._dense_weights: np.ndarray | None = None  # B, on a large catalogue (see score)
        self.n_items_ = 0

    def fit(self, data: InteractionMatrix, eigen: GramEigen | None = None) -> EASE:
        """Decompose the Gram matrix (or reuse ``eigen``, decomposed from the same data)."""
        self.eigen_ = eigen if eigen is not None else GramEigen.from_data(data, self.max_items)
        self.n_items_ = self.eigen_.n_items
        self._inverse_diag = 1.0 / self.eigen_.precision_diagonal(self.l2)
        self._dense_weights = None
        return self

    @property
    def kept_(self) -> np.ndarray:
        """Catalogue indices the model can recommend."""
        assert self.eigen_ is not None, "fit first"
        return self.eigen_.kept

    @property
    def weights_(self) -> np.ndarray:
        """The dense matrix B over ``kept_`` (built on demand)."""
        assert self.eigen_ is not None, "fit first"
        return self.eigen_.weights(self.l2)

    def user_rows(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """User rows over ``kept_`` (CSR): binary, or recency weights when ``recency_tau`` is set."""
        rows = history[:, self.kept_].tocsr()
        if self.uses_recency:
            rows = rows.copy()
            rows.data = recency_weights(rows.data - 1.0, self.recency_tau)
        else:
            rows = (rows != 0).astype(np.float64)
        return rows

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """Reconstruction ``x_u · B``; items outside the capped catalogue get ``-inf``."""
        assert self.eigen_ is not None and self._inverse_diag is not None, "fit first"
        scores = np.full((history.shape[0], self.n_items_), -np.inf, dtype=np.float32)
        if self.n_items_ > base.LARGE_CATALOGUE:
            # B once (float32, kept x kept), then each user's few items times B: two dense
            # products over the kept items per batch cost 1,000 times more at 60,000 items
            if self._dense_weights is None:
                self._dense_weights = self.weights_
            scores[:, self.kept_] = self.user_rows(history).astype(np.float32) @ self._dense_weights
            return scores
        rows = self.user_rows(history).astype(self.eigen_.vectors.dtype)
        x = rows.toarray()
        # x B = x - (x P) diag(1/diag(P)); B's diagonal is zero, so x's own entries cancel
        reconstructed = self.eigen_.precision_rows(x, self.l2, sparse=rows)
        scores[:, self.kept_] = (x - reconstructed * self._inverse_diag[None, :]).astype(np.float32)
        return scores

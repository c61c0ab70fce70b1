"""The first stage's second source: item neighbours of the user's recent history.

The two-tower model reads a user's taste well, but on a large catalogue with few events
per item it learns the item-to-item structure (a sequel, a film of the same season, what
people watch next) slowly; item neighbours read it directly from co-occurrence. The first
stage therefore scores every item by a blend of both:

    score(i) = (q . e_i) / sd_q  +  weight * nb(i) / sd_nb,
    nb(i)    = sum over the last ``max_history`` history items j of exp(-n_j / tau) * sim(j, i),

where ``n_j`` is how many events before the user's latest one item ``j`` came, ``sim`` is
the item-kNN similarity of the known events (the ranking context's ``cooccurrence``), and
``sd_q``, ``sd_nb`` are the two scores' standard deviations over the whole catalogue, so
``weight`` trades like for like on every catalogue. ``sd_q`` comes in closed form from the
item embeddings' covariance (no need to score every item). ``weight`` and ``tau`` are tuned
on validation (the tune stage); a weight of 0 is the two-tower model alone.

Items no history item is a neighbour of keep ``nb = 0``, so the blended top-k over the whole
catalogue lies in the union of the towers' own top-k and the neighbours' support: an index
over the towers plus a sparse lookup serve it exactly (up to the index's approximation).
This module is plain NumPy and SciPy: the service and the training stages share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Blend:
    """How much the neighbour source counts (``weight``) and how fast a history item's
    say fades with its age in events (``tau``); ``max_history``: latest items read."""

    weight: float
    tau: float
    max_history: int = 50

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> Blend | None:
        """The ``blend`` entry of a retrieval config (``{weight, tau}``), or None when absent
        or when its weight is 0 (the towers alone).

        Raises:
            ValueError: a value is missing, negative, or not a number.
        """
        spec = (config or {}).get("blend")
        if spec is None:
            return None
        if not isinstance(spec, dict) or not {"weight", "tau"} <= set(spec):
            raise ValueError(f"retrieval.blend must be a mapping with 'weight' and 'tau', got {spec!r}")
        weight, tau = spec["weight"], spec["tau"]
        for name, value in (("weight", weight), ("tau", tau)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"retrieval.blend.{name} must be a number, got {value!r}")
        if weight < 0 or tau <= 0:
            raise ValueError(f"retrieval.blend needs weight >= 0 and tau > 0, got weight {weight}, tau {tau}")
        max_history = int(spec.get("max_history", 50))
        if max_history < 1:
            raise ValueError(f"retrieval.blend.max_history must be at least 1, got {max_history}")
        return cls(float(weight), float(tau), max_history) if weight > 0 else None

    def as_config(self) -> dict[str, float | int]:
        """The JSON form stored with the towers."""
        return {"weight": self.weight, "tau": self.tau, "max_history": self.max_history}


class Blender:
    """Blended first-stage scores over one catalogue (item embeddings plus item similarity)."""

    def __init__(self, blend: Blend, item_embeddings: np.ndarray, similarity: sp.csr_matrix):
        if similarity.shape != (len(item_embeddings), len(item_embeddings)):
            raise ValueError(
                f"the item similarity is {similarity.shape}, the catalogue has {len(item_embeddings)} items"
            )
        self.blend = blend
        self.similarity = sp.csr_matrix(similarity, dtype=np.float64)
        emb = np.asarray(item_embeddings, np.float64)
        self.n_items = emb.shape[0]
        self.covariance = np.cov(emb, rowvar=False, bias=True) if self.n_items > 1 else np.zeros((emb.shape[1],) * 2)

    def neighbours(self, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The neighbour score's support and values for one history (catalogue rows, oldest first)."""
        rows = np.asarray(history_rows, np.int64)
        rows = rows[rows >= 0][-self.blend.max_history :]
        if rows.size == 0:
            return np.array([], np.int64), np.array([], np.float64)
        weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / self.blend.tau)
        vector = sp.csr_matrix((weights, (np.zeros(rows.size, np.int64), rows)), shape=(1, self.n_items))
        scores = (vector @ self.similarity).tocsr()
        scores.sum_duplicates()
        keep = scores.data > 0
        return scores.indices[keep].astype(np.int64), scores.data[keep]

    def neighbours_of(self, histories: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`neighbours` of many histories by one sparse product (each row is built and
        summed as the one-history product builds and sums it, so the values are the same)."""
        users, rows, weights = [], [], []
        for user, history in enumerate(histories):
            kept = np.asarray(history, np.int64)
            kept = kept[kept >= 0][-self.blend.max_history :]
            users.append(np.full(kept.size, user, np.int64))
            rows.append(kept)
            weights.append(np.exp(-np.arange(kept.size - 1, -1, -1, dtype=np.float64) / self.blend.tau))
        if not histories:
            return []
        vectors = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(users), np.concatenate(rows))),
            shape=(len(histories), self.n_items),
        )
        scores = (vectors @ self.similarity).tocsr()
        scores.sum_duplicates()
        out = []
        for user in range(len(histories)):
            span = slice(scores.indptr[user], scores.indptr[user + 1])
            support, values = scores.indices[span], scores.data[span]
            keep = values > 0
            out.append((support[keep].astype(np.int64), values[keep]))
        return out

    def scale(self, query: np.ndarray, nb_values: np.ndarray) -> tuple[float, float]:
        """``(1 / sd_q, weight / sd_nb)``: the multipliers of the two scores (0 where a
        score does not vary over the catalogue)."""
        q = np.asarray(query, np.float64)
        sd_q = float(np.sqrt(max(q @ self.covariance @ q, 0.0)))
        mean_nb = nb_values.sum() / self.n_items
        sd_nb = float(np.sqrt(max((nb_values**2).sum() / self.n_items - mean_nb**2, 0.0)))
        return (1.0 / sd_q if sd_q > 0 else 1.0), (self.blend.weight / sd_nb if sd_nb > 0 else 0.0)

    def full_scores(
        self,
        query: np.ndarray,
        tower_scores: np.ndarray,
        history_rows: np.ndarray,
        neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Blended scores of every catalogue item, from the towers' scores of every item
        (``neighbours``: :meth:`neighbours` of the history, when already computed)."""
        support, values = neighbours if neighbours is not None else self.neighbours(history_rows)
        a, b = self.scale(query, values)
        out = np.asarray(tower_scores, np.float64) * a
        out[support] += b * values
        return out

    def candidates(
        self,
        query: np.ndarray,
        tower_rows: np.ndarray,
        tower_scores: np.ndarray,
        history_rows: np.ndarray,
        item_embeddings: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Blended scores of the union of an index's top rows and the neighbours' support.

        Args:
            query: the user's query embedding.
            tower_rows: catalogue rows an index returned for ``query``.
            tower_scores: their exact tower scores (``q . e``).
            history_rows: the user's history as catalogue rows, oldest first.
            item_embeddings: the catalogue's item embeddings (to score neighbours the index
                did not return).

        Returns:
            ``(rows, blended scores)``, unordered, each row once.
        """
        support, values = self.neighbours(history_rows)
        a, b = self.scale(query, values)
        extra = np.setdiff1d(support, tower_rows, assume_unique=False)
        rows = np.concatenate([np.asarray(tower_rows, np.int64), extra])
        scores = (
            np.concatenate(
                [np.asarray(tower_scores, np.float64), np.asarray(item_embeddings[extra] @ query, np.float64)]
            )
            * a
        )  # as the towers
        order = np.argsort(rows, kind="stable")  # rows are distinct; locate the support among them
        scores[order[np.searchsorted(rows[order], support)]] += b * values
        return rows, scores

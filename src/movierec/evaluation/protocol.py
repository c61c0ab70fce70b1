"""The evaluation protocol: who is scored, on what, with which history.

A target period (validation or test) is scored against the *known* past (train, or
train plus validation). For every user with at least one relevant event in the
target period:

* the user's known history is every item they touched in the known past (empty for
  a cold user, who is then served by the system's cold-start path);
* the relevant set is the target-period items they had not touched before (optionally
  only those rated at least ``min_rating``);
* the system ranks the whole known catalogue, minus the user's history.

Items first seen in the target period cannot be recommended by a system trained on
the past, but they still count in the relevant set: recall is honest about them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix, Vocab


@dataclass
class EvalSet:
    """The users to score for one target period, with their histories and relevant items.

    Attributes:
        user_ids: external ids of the scored users.
        history: CSR ``(n_users, n_items)`` over the known catalogue.
        relevant: CSR ``(n_users, n_items + n_cold_items)``; columns past ``n_items`` are
            relevant items that the known past never saw (unrecommendable).
        cold_user: True where the user has no known history.
        items: the known catalogue's vocabulary.
        recency: same sparsity as ``history``, each entry ``1 + n`` where the item was last
            touched ``n`` events before the user's latest known event (for recency-aware
            systems).
    """

    user_ids: np.ndarray
    history: sp.csr_matrix
    relevant: sp.csr_matrix
    cold_user: np.ndarray
    items: Vocab
    recency: sp.csr_matrix

    @property
    def n_items(self) -> int:
        """Size of the recommendable catalogue."""
        return len(self.items)

    def subset(self, mask: np.ndarray) -> EvalSet:
        """The same evaluation restricted to the users where ``mask`` is True."""
        return EvalSet(
            self.user_ids[mask],
            self.history[mask],
            self.relevant[mask],
            self.cold_user[mask],
            self.items,
            self.recency[mask],
        )

    def rows_for(self, model: object) -> sp.csr_matrix:
        """The history rows ``model`` scores: recency-valued when it ``uses_recency``."""
        return self.recency if getattr(model, "uses_recency", False) else self.history


def build_eval_set(known: InteractionMatrix, target: pa.Table, min_rating: float | None = None) -> EvalSet:
    """Assemble the :class:`EvalSet` for ``target`` events given the ``known`` past.

    Args:
        known: the indexed known past.
        target: the target period's events.
        min_rating: when set, only target events rated at least this count as relevant.

    Returns:
        The evaluation set; users with no relevant item are left out.
    """
    if min_rating is not None:
        target = target.filter(pc.greater_equal(target.column("rating"), float(min_rating)))
    user_ids = target.column("user_id").to_numpy()
    item_ids = target.column("item_id").to_numpy()
    users = Vocab.from_values(user_ids)
    item_idx = known.items.index(item_ids)
    cold_items = Vocab.from_values(item_ids[item_idx < 0])
    col = np.where(item_idx >= 0, item_idx, known.n_items + cold_items.index(item_ids))
    row = users.index(user_ids)
    n_cols = known.n_items + len(cold_items)
    relevant = sp.csr_matrix((np.ones(row.size, dtype=np.float32), (row, col)), shape=(len(users), n_cols))
    relevant.sum_duplicates()
    history = known.history_rows(users.ids)
    # drop re-interactions with already-known items: they are excluded from every ranking
    padded = sp.hstack([history, sp.csr_matrix((history.shape[0], len(cold_items)))]).tocsr()
    relevant = (relevant - relevant.multiply(padded)).tocsr()
    relevant.eliminate_zeros()
    relevant.data[:] = 1.0
    has_relevant = np.diff(relevant.indptr) > 0
    cold = np.diff(history.indptr) == 0
    full = EvalSet(users.ids, history, relevant, cold, known.items, known.recency_rows(users.ids))
    return full.subset(has_relevant)

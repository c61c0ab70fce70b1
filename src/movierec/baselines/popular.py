"""Most-popular: the same list for everyone, ranked by recent interaction counts."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix

DAY = 86_400


class MostPopular:
    """Ranks items by how many events they had, optionally only in the last ``window_days``.

    Under a temporal split, popularity drifts: counting only the recent past often
    predicts the next period better than all-time counts, so the window is tuned on
    validation. All-time counts break ties (scaled far below one event).
    """

    name = "most_popular"

    def __init__(self, window_days: float | None = None):
        self.window_days = window_days
        self.scores_: np.ndarray | None = None

    def fit(self, data: InteractionMatrix) -> MostPopular:
        """Count events per item (in the window ending at the last training event)."""
        total = np.bincount(data.item_idx, minlength=data.n_items).astype(np.float64)
        if self.window_days is None:
            recent = total
        else:
            start = data.timestamp.max() - self.window_days * DAY
            mask = data.timestamp >= start
            recent = np.bincount(data.item_idx[mask], minlength=data.n_items).astype(np.float64)
        self.scores_ = recent + total / (total.max() + 1.0)
        return self

    @property
    def shared_scores(self) -> np.ndarray | None:
        """The one score row every user gets (:func:`movierec.baselines.base.recommend` ranks
        it once per batch on a large catalogue)."""
        return self.scores_

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """The popularity scores, repeated for every user."""
        return np.broadcast_to(self.scores_, (history.shape[0], self.scores_.size)).copy()

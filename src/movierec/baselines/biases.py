"""Rating baseline: global mean plus regularised user and item biases."""

from __future__ import annotations

import numpy as np

from movierec.data.matrix import Vocab


class BiasBaseline:
    """Predicts ``μ + b_u + b_i`` (Koren 2008's baseline predictor).

    Biases are fitted by a few rounds of alternating ridge updates:
    ``b_i = Σ(r - μ - b_u) / (λ + n_i)`` then ``b_u = Σ(r - μ - b_i) / (λ + n_u)``.
    Unknown users or items get a zero bias, so the prediction falls back to the mean.
    """

    name = "biases"

    def __init__(self, reg: float = 10.0, rounds: int = 10):
        self.reg = reg
        self.rounds = rounds

    def fit(self, user_ids: np.ndarray, item_ids: np.ndarray, ratings: np.ndarray) -> BiasBaseline:
        """Fit on parallel arrays of ids and ratings."""
        self.users_ = Vocab.from_values(user_ids)
        self.items_ = Vocab.from_values(item_ids)
        u = self.users_.index(user_ids)
        i = self.items_.index(item_ids)
        r = np.asarray(ratings, dtype=np.float64)
        self.mean_ = float(r.mean())
        self.user_bias_ = np.zeros(len(self.users_))
        self.item_bias_ = np.zeros(len(self.items_))
        n_u = np.bincount(u, minlength=len(self.users_))
        n_i = np.bincount(i, minlength=len(self.items_))
        for _ in range(self.rounds):
            resid = r - self.mean_ - self.user_bias_[u]
            self.item_bias_ = np.bincount(i, resid, minlength=len(self.items_)) / (self.reg + n_i)
            resid = r - self.mean_ - self.item_bias_[i]
            self.user_bias_ = np.bincount(u, resid, minlength=len(self.users_)) / (self.reg + n_u)
        return self

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Predicted ratings; the mean plus whatever biases are known."""
        u = self.users_.index(user_ids)
        i = self.items_.index(item_ids)
        pred = np.full(u.shape, self.mean_)
        pred += np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)
        pred += np.where(i >= 0, self.item_bias_[np.maximum(i, 0)], 0.0)
        return pred

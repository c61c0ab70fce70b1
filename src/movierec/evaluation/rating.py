"""Rating-prediction error metrics (RMSE and MAE)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def rating_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Root mean squared error and mean absolute error of predicted ratings.

    Args:
        y_true: Observed ratings, any shape.
        y_pred: Predicted ratings, the same shape as ``y_true``.

    Returns:
        ``{"rmse": ..., "mae": ...}``.

    Raises:
        ValueError: If the shapes differ, the arrays are empty, or either holds a NaN
            or infinite value.
    """
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has shape {pred.shape}")
    if true.size == 0:
        raise ValueError("y_true and y_pred are empty; need at least one rating")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds NaN or infinite values")
    error = pred - true
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }

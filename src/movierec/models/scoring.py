"""Turning embeddings into full-catalogue top-k lists for the evaluation protocol."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from movierec.baselines.base import top_k
from movierec.evaluation.protocol import EvalSet
from movierec.models.inputs import user_histories
from movierec.models.retrieval import FittedRetrieval


def check_aligned(fitted: FittedRetrieval, evalset: EvalSet) -> None:
    """The model's catalogue and the evaluation's item vocabulary must be the same items."""
    if not np.array_equal(fitted.catalogue.item_id, evalset.items.ids):
        raise ValueError("the model's catalogue differs from the evaluation's known items; "
                         "build both from the same known events")


def retrieve(fitted: FittedRetrieval, evalset: EvalSet, known_events: pa.Table, k: int,
             batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` catalogue rows and their scores for every evaluated user, seen items excluded.

    Users are embedded from their known history (time-ordered), id and demographics;
    a user with no history is embedded from demographics (and the out-of-vocabulary id).

    Returns:
        ``(rows, scores)``, both ``(n_users, k)``; rows are ``-1`` where fewer exist.
    """
    check_aligned(fitted, evalset)
    histories = user_histories(known_events)
    hist = [histories.get(int(u), np.array([], np.int64)) for u in evalset.user_ids]
    queries = fitted.embed_users(evalset.user_ids, hist)
    items = fitted.embed_items()
    rows = np.empty((len(evalset.user_ids), k), dtype=np.int64)
    scores = np.empty((len(evalset.user_ids), k), dtype=np.float32)
    for start in range(0, len(evalset.user_ids), batch_size):
        block = (queries[start : start + batch_size] @ items.T).astype(np.float64)
        seen = evalset.history[start : start + batch_size]
        r, c = seen.nonzero()
        block[r, c] = -np.inf
        top = top_k(block, k)
        rows[start : start + len(block)] = top
        scores[start : start + len(block)] = np.where(top >= 0, np.take_along_axis(block, np.maximum(top, 0), 1), -np.inf)
    return rows, scores

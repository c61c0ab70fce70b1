"""The evaluation protocol scores the right users against the right items."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from movierec.data.matrix import InteractionMatrix
from movierec.evaluation.protocol import build_eval_set


def _table(rows: list[tuple[int, int, float]]) -> pa.Table:
    users, items, ratings = zip(*rows)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "rating": pa.array(ratings, pa.float32()),
            "timestamp": pa.array(range(len(rows)), pa.int64()),
        }
    )


def test_eval_set_excludes_known_items_and_flags_cold_users_and_items() -> None:
    known = InteractionMatrix.from_table(_table([(1, 10, 5), (1, 11, 3), (2, 12, 4)]))
    target = _table(
        [
            (1, 10, 5),  # user 1 re-rates a known item: not relevant (it is excluded from rankings)
            (1, 12, 2),  # relevant
            (2, 99, 4),  # item 99 never seen: relevant, but outside the catalogue
            (3, 11, 5),  # user 3 is cold
            (4, 10, 1),  # user 4 is cold, with a low rating
        ]
    )
    ev = build_eval_set(known, target)
    assert ev.user_ids.tolist() == [1, 2, 3, 4]
    assert ev.cold_user.tolist() == [False, False, True, True]
    assert ev.relevant.shape == (4, 3 + 1)  # three catalogue items plus the unseen item 99
    idx = {int(i): j for j, i in enumerate(known.items.ids)}
    assert ev.relevant[0].indices.tolist() == [idx[12]]
    assert ev.relevant[1].indices.tolist() == [3]  # the extra column
    assert sorted(ev.history[0].indices.tolist()) == sorted([idx[10], idx[11]])
    assert ev.history[2].nnz == 0


def test_min_rating_keeps_liked_items_only() -> None:
    known = InteractionMatrix.from_table(_table([(1, 10, 5), (2, 12, 4)]))
    target = _table([(1, 12, 2), (2, 10, 5), (3, 10, 1)])
    ev = build_eval_set(known, target, min_rating=4)
    assert ev.user_ids.tolist() == [2]
    assert np.asarray(ev.relevant.sum(axis=1)).ravel().tolist() == [1]

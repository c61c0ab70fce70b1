"""The packed-key stable order equals NumPy's two-key lexsort, and the recency matrix built
with it equals the one built with lexsort."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix, _stable_order


@pytest.mark.parametrize(
    ("major", "minor"),
    [
        (np.array([3, 1, 3, 1, 2, 2, 2]), np.array([5, 5, 4, 9, 0, 0, 0])),  # ties keep their positions
        (np.array([-4, 7, -4, 0], np.int32), np.array([-(10**9), 10**9, 3, 3])),  # negatives, wide ranges
        (np.array([2**40, 0, 2**40]), np.array([2**40, 1, 0])),  # too wide to pack: lexsort
        (np.array([1.5, 0.5, 1.5]), np.array([2, 1, 0])),  # floats: lexsort
        (np.array([], np.int64), np.array([], np.int64)),
    ],
)
def test_the_packed_order_is_lexsorts(major: np.ndarray, minor: np.ndarray) -> None:
    np.testing.assert_array_equal(_stable_order(major, minor), np.lexsort((minor, major)))


def test_random_keys_sort_like_lexsort() -> None:
    rng = np.random.default_rng(0)
    major, minor = rng.integers(0, 50, 5_000), rng.integers(-3, 3, 5_000)
    np.testing.assert_array_equal(_stable_order(major, minor), np.lexsort((minor, major)))


def test_recency_matrix_equals_the_lexsort_construction() -> None:
    rng = np.random.default_rng(1)
    n = 3_000
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(1, 60, n), pa.int64()),
            "item_id": pa.array(rng.integers(1, 80, n), pa.int64()),  # repeats of (user, item)
            "timestamp": pa.array(rng.integers(0, 40, n), pa.int64()),  # ties in time
            "rating": pa.array(np.full(n, 4.0), pa.float32()),
        }
    )
    m = InteractionMatrix.from_table(table)
    order = np.lexsort((np.arange(m.user_idx.size), m.timestamp, m.user_idx))
    users, items = m.user_idx[order], m.item_idx[order]
    group_end = np.r_[np.flatnonzero(np.diff(users)), users.size - 1]
    from_end = np.repeat(group_end, np.diff(np.r_[-1, group_end])) - np.arange(users.size)
    pick = np.lexsort((from_end, items, users))
    users, items, from_end = users[pick], items[pick], from_end[pick]
    first = np.r_[True, (np.diff(users) != 0) | (np.diff(items) != 0)]
    want = sp.csr_matrix(
        ((1.0 + from_end[first]).astype(np.float32), (users[first], items[first])), shape=m.matrix.shape
    )
    got = m.recency_matrix()
    for a, b in ((got.indptr, want.indptr), (got.indices, want.indices), (got.data, want.data)):
        np.testing.assert_array_equal(a, b)

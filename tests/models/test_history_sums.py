"""The collaborative pair features summed for many users at once equal the one-user-at-a-time sums, bit for bit."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import scipy.sparse as sp

from movierec.models.history_sums import history_sums
from movierec.models.inputs import user_histories
from movierec.models.ranking_features import RankingContext, pair_features


def test_sums_by_hand_with_a_repeated_item_and_chunks() -> None:
    w = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 4], [5, 6, 0]], np.float32))
    histories = [np.array([0, 1, 0]), np.array([2])]  # user 0 touched item 0 twice
    pairs = [np.array([0, 1]), np.array([2, 3])]
    item_rows = np.array([1, 2, 0, 1])
    decay = [np.array([0.25, 0.5, 1.0]), np.array([1.0])]
    for chunk in (1, 2):
        sums = history_sums(w, histories, pairs, item_rows, decay, chunk_users=chunk)
        np.testing.assert_array_equal(sums.plain, [1 + 0 + 1, 2 + 4 + 2, 5, 6])
        np.testing.assert_allclose(sums.weighted, [0.25 * 1 + 1.0 * 1, 0.25 * 2 + 0.5 * 4 + 1.0 * 2, 5.0, 6.0])


def _one_user_at_a_time(ctx: RankingContext, user_ids: np.ndarray, item_rows: np.ndarray) -> dict[str, np.ndarray]:
    """The earlier code: each user's rows of the weights summed densely, then read."""
    n = user_ids.size
    out = {
        k: np.zeros(n, np.float32) for k in ("cooccurrence", "cooccurrence_mean", "ease_score", "ease_recency_score")
    }
    for user in np.unique(user_ids):
        idx = np.flatnonzero(user_ids == user)
        history = ctx.histories.get(int(user))
        if history is None:
            continue
        rows = ctx.catalogue.rows_of(history)
        rows = rows[rows >= 0]
        if rows.size == 0:
            continue
        summed = np.asarray(ctx.cooccurrence[rows].sum(axis=0)).ravel()[item_rows[idx]]
        out["cooccurrence"][idx] = summed
        out["cooccurrence_mean"][idx] = summed / rows.size
        weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / ctx.ease_tau)
        block = ctx.ease[rows][:, item_rows[idx]].toarray()
        out["ease_score"][idx] = block.sum(axis=0)
        out["ease_recency_score"][idx] = weights @ block
    return out


def test_pair_features_collaborative_sums_equal_the_per_user_computation(world: dict, fitted) -> None:
    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    ctx = RankingContext.build(
        known, world["catalogue"], fitted.embed_items(), world["users"], cut, ease=(50.0, 5.0), neighbours=8
    )
    rng = np.random.default_rng(1)
    users = np.unique(events.column("user_id").to_numpy())
    assert any(int(u) not in user_histories(known) for u in users)  # cold users get zeros
    user_ids = np.repeat(users, 12)
    item_rows = rng.integers(0, len(world["catalogue"]), user_ids.size)
    order = rng.permutation(user_ids.size)  # pairs in no particular order
    user_ids, item_rows = user_ids[order], item_rows[order]
    query = rng.random((user_ids.size, fitted.embed_items().shape[1])).astype(np.float32)
    got = pair_features(ctx, user_ids, item_rows, query)
    want = _one_user_at_a_time(ctx, user_ids, item_rows)
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    assert (got["cooccurrence"] > 0).any() and (got["ease_score"] != 0).any()

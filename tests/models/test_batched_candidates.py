"""The first stage scores users a batch at a time: the lists do not depend on the batch size."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from movierec.models.blend import Blend
from movierec.models.inputs import user_histories
from movierec.models.ranking import candidate_rows
from movierec.models.ranking_features import RankingContext


@pytest.mark.parametrize("blend", [None, Blend(weight=1.0, tau=5.0)])
def test_batched_first_stage_equals_unbatched(world: dict, fitted, blend: Blend | None) -> None:
    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    ctx = RankingContext.build(known, world["catalogue"], fitted.embed_items(), world["users"], cut, blend=blend)
    histories = user_histories(known)
    users = np.unique(events.column("user_id").to_numpy())  # warm and cold (no known event) users
    assert any(int(u) not in histories for u in users)
    query = fitted.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
    seen = [world["catalogue"].rows_of(histories.get(int(u), np.array([], np.int64))) for u in users]
    whole = candidate_rows(ctx, query, users, 10, seen, batch_size=10_000)
    assert (whole >= 0).any()
    for batch in (1, 7, 32):
        np.testing.assert_array_equal(candidate_rows(ctx, query, users, 10, seen, batch_size=batch), whole)


def test_reranking_in_chunks_of_users_equals_one_pass(world: dict, fitted) -> None:
    from movierec.models.ranking import fit_ranker, rerank, training_pairs

    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    labels = events.filter(pc.greater_equal(events.column("timestamp"), cut))
    ctx = RankingContext.build(known, world["catalogue"], fitted.embed_items(), world["users"], cut)
    histories = user_histories(known)
    users = np.unique(labels.column("user_id").to_numpy())
    query = fitted.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
    feats, y, ratings = training_pairs(ctx, dict(zip(users.tolist(), query)), labels, 10, 3, seed=0)
    config = {"hidden_units": [8], "learning_rate": 0.01, "batch_size": 64, "epochs": 1, "rating_weight": 0.2}
    ranker = fit_ranker(feats, y, ratings, config, seed=0)
    seen = [world["catalogue"].rows_of(histories.get(int(u), np.array([], np.int64))) for u in users]
    cands = candidate_rows(ctx, query, users, 10, seen)
    whole = rerank(ranker, ctx, users, query, cands)
    assert not np.array_equal(whole, cands)  # the ranker reorders
    for chunk in (1, 5):
        np.testing.assert_array_equal(rerank(ranker, ctx, users, query, cands, chunk_users=chunk), whole)


def test_the_rankers_pair_batches_are_a_shuffle_of_the_pairs_themselves() -> None:
    import tensorflow as tf

    from movierec.models.ranking import pair_batches

    rng = np.random.default_rng(0)
    n = 1_000
    data = {
        "inputs": {"a": rng.random(n).astype(np.float32), "gender": np.array(list("MF" * (n // 2)), object)},
        "label": (rng.random(n) < 0.3).astype(np.float32),
        "rating": rng.random(n).astype(np.float32),
    }
    reference = tf.data.Dataset.from_tensor_slices(data).shuffle(n, seed=5).batch(64)
    streamed = pair_batches(data, 64, seed=5)
    for _ in range(2):  # two epochs: both reshuffle the same way
        pairs = list(zip(streamed, reference, strict=True))
        assert len(pairs) == 16
        for new, old in pairs:
            for a, b in zip(tf.nest.flatten(new), tf.nest.flatten(old), strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_many_histories_neighbours_equal_each_historys_own(world: dict, fitted) -> None:
    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    blend = Blend(weight=1.0, tau=3.0, max_history=7)
    ctx = RankingContext.build(known, world["catalogue"], fitted.embed_items(), world["users"], cut, blend=blend)
    blender = ctx.blender()
    histories = [ctx.catalogue.rows_of(h) for h in ctx.histories.values()]
    histories += [np.array([], np.int64), np.array([-1, -1])]  # nothing known of these
    together = blender.neighbours_of(histories)
    assert len(together) == len(histories) and any(support.size for support, _ in together)
    for history, (support, values) in zip(histories, together, strict=True):
        alone = blender.neighbours(history)
        np.testing.assert_array_equal(support, alone[0])
        np.testing.assert_array_equal(values, alone[1])


def test_on_a_large_catalogue_the_first_stage_selects_by_threshold_with_the_same_lists(
    world: dict, fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movierec.models import ranking

    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    ctx = RankingContext.build(
        known, world["catalogue"], fitted.embed_items(), world["users"], cut, blend=Blend(weight=1.0, tau=5.0)
    )
    histories = user_histories(known)
    users = np.unique(events.column("user_id").to_numpy())
    query = fitted.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
    seen = [world["catalogue"].rows_of(histories.get(int(u), np.array([], np.int64))) for u in users]
    partitioned = candidate_rows(ctx, query, users, 10, seen)
    monkeypatch.setattr(ranking, "LARGE_CATALOGUE", 5)  # the tiny catalogue counts as large
    np.testing.assert_array_equal(candidate_rows(ctx, query, users, 10, seen), partitioned)  # no ties here


@pytest.mark.parametrize("blend", [None, Blend(weight=1.0, tau=5.0)])
def test_on_a_large_catalogue_blocks_of_users_give_each_users_own_list(
    world: dict, fitted, monkeypatch: pytest.MonkeyPatch, blend: Blend | None
) -> None:
    """The large-catalogue path ranks blocks of users at once (by a bound on the k-th value):
    each list is the one user's full sort of the blended scores, seen items left out, ties by
    index; whatever the batch and block sizes."""
    from movierec.baselines import base
    from movierec.models import ranking

    events = world["events"]
    cut = int(np.quantile(events.column("timestamp").to_numpy(), 0.7))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    ctx = RankingContext.build(known, world["catalogue"], fitted.embed_items(), world["users"], cut, blend=blend)
    histories = user_histories(known)
    users = np.unique(events.column("user_id").to_numpy())
    query = fitted.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
    seen = [world["catalogue"].rows_of(histories.get(int(u), np.array([], np.int64))) for u in users]
    monkeypatch.setattr(ranking, "LARGE_CATALOGUE", 5)
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 5)
    got = candidate_rows(ctx, query, users, 10, seen)
    blender = ctx.blender()
    for i, user in enumerate(users.tolist()):
        if user not in ctx.histories:
            continue
        row = (query[i] @ ctx.item_embeddings.T).astype(np.float32)
        if blender is not None:
            row = blender.full_scores(query[i], row, ctx.catalogue.rows_of(ctx.histories[user]))
        row[seen[i]] = -np.inf
        finite = np.flatnonzero(np.isfinite(row))
        want = finite[np.lexsort((finite, -row[finite]))][:10]
        np.testing.assert_array_equal(got[i, : want.size], want)
        assert (got[i, want.size :] == -1).all()
    original = ranking._top_rows_of_many
    monkeypatch.setattr(ranking, "_top_rows_of_many", lambda *a, **kw: original(*a, **{**kw, "chunk": 3}))
    for batch in (1, 7):
        np.testing.assert_array_equal(candidate_rows(ctx, query, users, 10, seen, batch_size=batch), got)

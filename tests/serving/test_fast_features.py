"""The chain's one-user fast paths equal the training code's features and blend, and are
refused when they do not (issue 9, "make it fast")."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from movierec.models.ranking_features import DENSE_FEATURES, pair_features
from movierec.serving import fast_features
from movierec.serving.fast_features import Dense, Rows, ServingBlender, ServingFeatures, check_features
from movierec.serving.service import Recommender, UserQuery


@pytest.fixture(scope="module")
def rec(client: TestClient) -> Recommender:
    return client.app.state.service.recommender


def _query(rec: Recommender, user: int) -> np.ndarray:
    return rec.embed(UserQuery(user_id=user), [i for i in rec.histories[user].tolist() if i in rec.row_of])


def test_the_served_bundle_uses_both_fast_paths(rec: Recommender) -> None:
    assert isinstance(rec.features, ServingFeatures)
    assert isinstance(rec.blender, ServingBlender)  # params.yaml blends the towers with item neighbours


def test_fast_features_equal_pair_features_for_every_user_and_a_given_history(rec: Recommender) -> None:
    rows = np.arange(len(rec.catalogue))[::-1].copy()  # every item, in another order
    ctx = rec.context
    for user in list(rec.histories)[:15] + [987654321]:
        q = _query(rec, user) if user in rec.histories else rec.embed(UserQuery(user_id=user), [])
        want = pair_features(ctx, np.full(rows.size, user, np.int64), rows, np.repeat(q[None, :], rows.size, 0))
        got = rec.features(user, None, rows, q)
        for name in DENSE_FEATURES:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=1e-5, err_msg=f"{name} of user {user}")
            assert got[name].dtype == np.float32
    # a request's own history replaces the known one, as ctx.with_history does
    user, history = next(iter(rec.histories)), rec.catalogue.item_id[[3, 1, 4, 1, 5]]
    q = _query(rec, user)
    want = pair_features(
        ctx.with_history(user, history), np.full(rows.size, user, np.int64), rows, np.repeat(q[None, :], rows.size, 0)
    )
    got = rec.features(user, history, rows, q)
    for name in DENSE_FEATURES:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=1e-5, err_msg=name)


def test_the_dense_and_the_sparse_readers_agree(rec: Recommender) -> None:
    matrix = rec.context.cooccurrence
    dense, sparse = Dense(matrix, np.float32), Rows(matrix)
    rng = np.random.default_rng(0)
    n = matrix.shape[0]
    rows, cols = rng.integers(0, n, 30), rng.integers(0, n, 25)
    weights = rng.random(30)
    np.testing.assert_allclose(dense.restricted(rows, cols), sparse.restricted(rows, cols), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense.full(rows, weights), sparse.full(rows, weights), rtol=1e-5, atol=1e-6)
    for a, b in zip(dense.restricted_both(rows, cols, weights), sparse.restricted_both(rows, cols, weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_fast_blender_gives_the_training_candidates(rec: Recommender) -> None:
    slow = rec.context.blender()
    tower_rows = np.arange(0, len(rec.catalogue), 3)
    for user in list(rec.histories)[:10]:
        history = np.array([rec.row_of[i] for i in rec.histories[user].tolist() if i in rec.row_of], np.int64)
        q = _query(rec, user)
        scores = rec.item_embeddings[tower_rows] @ q
        want_rows, want_scores = slow.candidates(q, tower_rows, scores, history, rec.item_embeddings)
        got_rows, got_scores = rec.blender.candidates(q, tower_rows, scores, history, rec.item_embeddings)
        assert sorted(want_rows.tolist()) == sorted(got_rows.tolist())
        np.testing.assert_allclose(got_scores[np.argsort(got_rows)], want_scores[np.argsort(want_rows)], rtol=1e-9)


def test_a_fast_path_that_disagrees_is_not_used(rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ServingFeatures(rec.context)
    broken.item_features = {**broken.item_features, "item_year": broken.item_features["item_year"] + 0.01}
    users = list(rec.histories)[:3]
    assert not check_features(broken, users, lambda u: _query(rec, u))
    assert check_features(ServingFeatures(rec.context), users, lambda u: _query(rec, u))
    monkeypatch.setattr(fast_features, "DENSE_BUDGET_BYTES", 0)  # the sparse reader, still correct
    assert isinstance(ServingFeatures(rec.context).ease, Rows)
    assert check_features(ServingFeatures(rec.context), users, lambda u: _query(rec, u))


def test_a_bundle_whose_fast_features_disagree_is_served_by_the_training_code(
    rec: Recommender, tiny_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from movierec.serving import service

    monkeypatch.setattr(service, "check_features", lambda *args, **kwargs: False)
    slow = Recommender(tiny_project.checkpoints)
    assert slow.features is None
    user = next(iter(slow.histories))
    items = slow.catalogue.item_id[:20].tolist()
    want, _ = rec.rank(UserQuery(user_id=user), [], items)
    got, _ = slow.rank(UserQuery(user_id=user), [], items)
    assert got.item_ids == want.item_ids
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_the_split_first_layer_gives_the_rankers_scores(rec: Recommender) -> None:
    from movierec.serving.fast_ranker import FusedRanker, check_fused

    assert isinstance(rec.fused, FusedRanker)  # the bundle has rating biases: scores only
    users = list(rec.histories)[:8]
    assert check_fused(rec.fused, users, lambda u: _query(rec, u))
    broken = FusedRanker(rec.fast_ranker, rec.features)
    broken.item_part = broken.item_part + np.float32(0.05)
    assert not check_fused(broken, users, lambda u: _query(rec, u))
    # through the service: the fused path and the feature path order the candidates alike
    user = users[0]
    items = rec.catalogue.item_id[:30].tolist()
    fused, fused_ratings = rec.rank(UserQuery(user_id=user, age=33.0, gender="M"), [], items)
    saved, rec.fused = rec.fused, None
    try:
        plain, plain_ratings = rec.rank(UserQuery(user_id=user, age=33.0, gender="M"), [], items)
    finally:
        rec.fused = saved
    np.testing.assert_allclose(fused.scores, plain.scores, atol=1e-5)
    np.testing.assert_allclose(fused_ratings, plain_ratings, atol=1e-6)


def test_a_known_user_who_sends_demographics_is_not_served_the_precomputed_profile(rec: Recommender) -> None:
    user = next(iter(rec.histories))
    query = UserQuery(user_id=user, age=71.0, gender="F", occupation="writer")
    history = rec.history_of(query, [])
    result = rec.retrieve(query, [], 10, True, None, None, None, "brute")
    np.testing.assert_allclose(result.embedding, rec.embed(query, history), atol=1e-6)
    # the demographics may change the query embedding (when the tower reads them) and do
    # change the ranker's user inputs, so the profile made without them is not used
    assert rec._own_profile(query, []) is None and rec._own_profile(UserQuery(user_id=user), []) is not None
    assert rec._own_profile(UserQuery(user_id=user, age=40.0), []) is None


def test_load_checks_spread_a_bounded_number_of_rows_over_a_large_catalogue() -> None:
    small = fast_features.check_rows(1_682)
    np.testing.assert_array_equal(small, np.unique(np.r_[np.arange(100), np.arange(0, 1_682, 10)]))  # as before
    np.testing.assert_array_equal(fast_features.check_rows(30_000, first=0, every=7), np.arange(0, 30_000, 7))
    large = fast_features.check_rows(1_000_000)
    assert np.array_equal(large[:100], np.arange(100)) and large[-1] >= 1_000_000 - 200
    assert large.size <= fast_features.CHECK_ROWS + 100 and np.all(np.diff(large) > 0)


def test_item_metadata_rows_match_the_catalogue(rec: Recommender) -> None:
    cat = rec.catalogue
    for row in (0, len(cat) // 2, len(cat) - 1):
        item = rec.item(int(cat.item_id[row]))
        assert item["item_id"] == int(cat.item_id[row]) and item["title"] == cat.titles[row]
        assert item["genres"] == [g for g in cat.genres[row] if g]
        assert item["interactions"] == int(cat.n_interactions[row])
        assert item["recent_interactions"] == int(cat.n_recent[row])
        year = float(cat.year[row])
        assert item["year"] == (int(year) if np.isfinite(year) else None)
        mean = float(cat.mean_rating[row])
        assert item["mean_rating"] == (round(mean, 4) if np.isfinite(mean) else None)
        item["genres"].append("changed by a caller")
        assert rec.item(int(cat.item_id[row]))["genres"] == [g for g in cat.genres[row] if g]

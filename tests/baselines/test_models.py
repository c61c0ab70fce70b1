"""Each baseline computes what its paper says, checked on matrices small enough to do by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from movierec.baselines.base import recommend, top_k
from movierec.baselines.biases import BiasBaseline
from movierec.baselines.ease import EASE
from movierec.baselines.itemknn import ItemKNN
from movierec.baselines.popular import DAY, MostPopular
from movierec.data.matrix import InteractionMatrix, Vocab


def _data(pairs: list[tuple[int, int]], ts: list[int] | None = None) -> InteractionMatrix:
    users, items = zip(*pairs)
    return InteractionMatrix.from_table(
        pa.table(
            {
                "user_id": pa.array(users, pa.int64()),
                "item_id": pa.array(items, pa.int64()),
                "rating": pa.array([4.0] * len(pairs), pa.float32()),
                "timestamp": pa.array(ts or list(range(len(pairs))), pa.int64()),
            }
        )
    )


PAIRS = [(1, 10), (1, 11), (2, 10), (2, 11), (2, 12), (3, 12), (3, 13), (4, 10), (4, 13)]


def test_vocab_maps_unknown_ids_to_minus_one() -> None:
    vocab = Vocab.from_values(np.array([30, 10, 20, 10]))
    assert vocab.index(np.array([10, 20, 30, 40, 5])).tolist() == [0, 1, 2, -1, -1]


def test_ease_matches_the_closed_form_and_direct_least_squares() -> None:
    data = _data(PAIRS)
    model = EASE(l2=2.0).fit(data)
    x = data.matrix.toarray().astype(float)
    g = x.T @ x + 2.0 * np.eye(4)
    p = np.linalg.inv(g)
    expected = np.eye(4) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(model.weights_, expected, atol=1e-5)
    # the same B solves each column's ridge regression with that column's own item excluded
    for j in range(4):
        others = [i for i in range(4) if i != j]
        xo = x[:, others]
        w = np.linalg.solve(xo.T @ xo + 2.0 * np.eye(3), xo.T @ x[:, j])
        assert np.allclose(model.weights_[others, j], w, atol=1e-4)


def test_ease_never_recommends_items_outside_its_cap() -> None:
    data = _data(PAIRS)
    model = EASE(l2=1.0, max_items=2).fit(data)  # keeps items 10 and (tie broken by order) 11
    scores = model.score(data.matrix)
    kept = set(model.kept_.tolist())
    assert len(kept) == 2
    assert np.isneginf(scores[:, [i for i in range(4) if i not in kept]]).all()


def test_item_knn_cosine_by_hand() -> None:
    data = _data(PAIRS)
    model = ItemKNN(neighbours=3, shrink=0.0).fit(data)
    sim = model.similarity_.toarray()
    # items 10 and 11: users {1,2,4} and {1,2}: |∩| = 2, cosine = 2 / (sqrt(3) sqrt(2))
    assert sim[0, 1] == pytest.approx(2 / (np.sqrt(3) * np.sqrt(2)), rel=1e-5)
    # items 11 and 13 share no user
    assert sim[1, 3] == 0.0
    assert np.allclose(np.diag(sim), 0.0)
    with_shrink = ItemKNN(neighbours=3, shrink=1.0).fit(data).similarity_.toarray()
    assert with_shrink[0, 1] == pytest.approx(2 / (np.sqrt(3) * np.sqrt(2) + 1.0), rel=1e-5)


def test_item_knn_keeps_only_the_top_neighbours() -> None:
    data = _data(PAIRS)
    sim = ItemKNN(neighbours=1).fit(data).similarity_.toarray()
    assert ((sim > 0).sum(axis=0) <= 1).all()
    # blockwise computation gives the same matrix as one block
    small_blocks = ItemKNN(neighbours=3, block=1).fit(data).similarity_.toarray()
    assert np.allclose(small_blocks, ItemKNN(neighbours=3).fit(data).similarity_.toarray())


def test_most_popular_window_counts_recent_events_only() -> None:
    # item 10 is popular long ago, item 13 in the last day
    pairs = [(1, 10), (2, 10), (3, 10), (4, 13), (5, 13)]
    ts = [0, 0, 0, 30 * DAY, 30 * DAY]
    data = _data(pairs, ts)
    all_time = MostPopular().fit(data).scores_
    recent = MostPopular(window_days=7).fit(data).scores_
    assert all_time.argmax() == data.items.index(np.array([10]))[0]
    assert recent.argmax() == data.items.index(np.array([13]))[0]


def test_top_k_orders_and_pads() -> None:
    scores = np.array([[0.1, 0.9, 0.5, -np.inf], [-np.inf, -np.inf, 0.2, -np.inf]])
    assert top_k(scores, 3).tolist() == [[1, 2, 0], [2, -1, -1]]
    assert top_k(scores, 6).tolist()[0] == [1, 2, 0, -1, -1, -1]


def test_recommend_excludes_seen_and_serves_cold_users_the_fallback() -> None:
    data = _data(PAIRS)
    model = EASE(l2=1.0).fit(data)
    history = sp.vstack([data.matrix[0], sp.csr_matrix((1, 4), dtype=np.float32)]).tocsr()
    fallback = np.array([0.0, 1.0, 3.0, 2.0])
    recs = recommend(model, history, 4, fallback)
    seen = set(data.matrix[0].indices.tolist())
    assert not seen & set(recs[0][recs[0] >= 0].tolist())
    assert recs[0][2:].tolist() == [-1, -1]  # only 2 unseen items exist
    assert recs[1].tolist() == [2, 3, 1, 0]  # the cold user gets the fallback order


def test_bias_baseline_beats_the_mean_and_falls_back_for_unknowns() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 4000)
    items = rng.integers(0, 80, 4000)
    ub, ib = rng.normal(0, 0.7, 50), rng.normal(0, 0.7, 80)
    ratings = 3.5 + ub[users] + ib[items] + rng.normal(0, 0.3, 4000)
    model = BiasBaseline(reg=1.0).fit(users[:3000], items[:3000], ratings[:3000])
    pred = model.predict(users[3000:], items[3000:])
    rmse = np.sqrt(np.mean((pred - ratings[3000:]) ** 2))
    rmse_mean = np.sqrt(np.mean((ratings[:3000].mean() - ratings[3000:]) ** 2))
    assert rmse < 0.5 * rmse_mean
    assert model.predict(np.array([999]), np.array([999]))[0] == pytest.approx(model.mean_)


def test_ease_shares_one_eigendecomposition_across_l2_and_matches_the_inverse() -> None:
    from movierec.baselines.ease import GramEigen

    rng = np.random.default_rng(1)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 30, 200), rng.integers(0, 12, 200))})
    data = _data(pairs)
    eigen = GramEigen.from_data(data, max_items=100)
    x = data.matrix.toarray().astype(float)
    for l2 in (0.5, 5.0, 50.0):
        p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
        b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        model = EASE(l2=l2).fit(data, eigen=eigen)
        assert model.eigen_ is eigen
        assert np.allclose(model.score(data.matrix), x @ b, atol=1e-4)
        assert np.allclose(model.weights_, b, atol=1e-5)


def test_recency_weighted_ease_weights_the_users_recent_items() -> None:
    # user 1 touched 10, then 11, then 12; item 13 co-occurs with 10 (old), item 14 with 12 (recent)
    pairs = (
        [(1, 10), (1, 11), (1, 12)]
        + [(u, 10) for u in (2, 3, 4)]
        + [(u, 13) for u in (2, 3, 4)]
        + [(u, 12) for u in (5, 6)]
        + [(u, 14) for u in (5, 6)]
        + [(7, 11)]
    )
    data = _data(pairs)
    recency = data.recency_rows(np.array([1]))
    row = dict(zip(data.items.ids[recency.indices].tolist(), recency.data.tolist()))
    assert row == {12: 1.0, 11: 2.0, 10: 3.0}  # 1 + events before the user's last one
    plain = EASE(l2=0.5).fit(data)
    recent = EASE(l2=0.5, recency_tau=0.5).fit(data, eigen=plain.eigen_)
    assert recent.uses_recency and not plain.uses_recency
    col = {i: j for j, i in enumerate(data.items.ids.tolist())}
    p_scores, r_scores = plain.score(data.matrix[:1])[0], recent.score(recency)[0]
    # the recent-item neighbour gains on the old-item neighbour once recency counts
    assert r_scores[col[14]] - r_scores[col[13]] > p_scores[col[14]] - p_scores[col[13]]
    assert r_scores[col[14]] > r_scores[col[13]]


def test_ease_from_the_users_side_when_items_outnumber_users() -> None:
    """With fewer users than items, the eigenpairs come from XXᵀ; scores still match the inverse."""
    from movierec.baselines.ease import GramEigen

    rng = np.random.default_rng(5)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 6, 60), rng.integers(0, 25, 60))})
    data = _data(pairs)
    assert data.matrix.shape[0] < data.matrix.shape[1]
    eigen = GramEigen.from_data(data, max_items=100)
    assert eigen.vectors.shape[1] <= data.matrix.shape[0]  # only the non-zero eigenpairs
    x = data.matrix.toarray().astype(float)
    for l2 in (1.0, 30.0):
        p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
        b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        model = EASE(l2=l2).fit(data, eigen=eigen)
        assert np.allclose(model.score(data.matrix), x @ b, atol=1e-5)
        assert np.allclose(model.weights_, b, atol=1e-5)

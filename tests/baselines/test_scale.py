"""The baselines at scale: sparse top-k item-kNN, EASE above its cap, batched scoring, tuning samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from synthetic import synthetic_events

from movierec.baselines.base import recommend
from movierec.baselines.ease import EASE, capped_catalogue
from movierec.baselines.itemknn import ItemKNN
from movierec.baselines.popular import MostPopular
from movierec.baselines.run import run_baselines, sample_users
from movierec.data.matrix import InteractionMatrix
from movierec.evaluation.protocol import build_eval_set
from movierec.io import read_json
from movierec.split import method_params, split


def _random_data(n_users: int = 120, n_items: int = 70, density: float = 0.08, seed: int = 0) -> InteractionMatrix:
    rng = np.random.default_rng(seed)
    popularity = rng.pareto(1.5, n_items) + 0.1
    mask = rng.random((n_users, n_items)) < density * n_items * popularity[None, :] / popularity.sum()
    users, items = np.nonzero(mask)
    return InteractionMatrix.from_table(
        pa.table(
            {
                "user_id": pa.array(users + 1, pa.int64()),
                "item_id": pa.array(items + 100, pa.int64()),
                "rating": pa.array(np.full(users.size, 4.0), pa.float32()),
                "timestamp": pa.array(rng.permutation(users.size), pa.int64()),
            }
        )
    )


def _dense_knn(x: np.ndarray, neighbours: int, shrink: float) -> np.ndarray:
    """Item-kNN the long way: the whole cosine matrix, then each column's top entries."""
    co = x.T @ x
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(sim, 0.0)
    out = np.zeros_like(sim)
    for j in range(sim.shape[1]):
        order = np.argsort(-sim[:, j], kind="stable")[:neighbours]
        out[order, j] = sim[order, j]
    return out


@pytest.mark.parametrize(("neighbours", "shrink", "block"), [(5, 0.0, 16), (10, 10.0, 7), (200, 3.0, 1000)])
def test_sparse_top_k_item_knn_equals_the_dense_computation(neighbours: int, shrink: float, block: int) -> None:
    """Blocks of columns, top-k per column, a sparse result: the dense matrix's top-k entries.
    Ties at the k-th value may be broken either way, so the test compares each column's
    kept values (sorted) and requires every kept entry to be an entry of the dense top-k's value."""
    data = _random_data()
    model = ItemKNN(neighbours=neighbours, shrink=shrink, block=block).fit(data)
    got = model.similarity_
    assert sp.issparse(got) and got.shape == (data.n_items, data.n_items)
    expected = _dense_knn(data.matrix.toarray().astype(np.float64), neighbours, shrink)
    dense_got = got.toarray()
    full = _dense_knn(data.matrix.toarray().astype(np.float64), data.n_items, shrink)
    for j in range(data.n_items):
        want = np.sort(expected[:, j][expected[:, j] > 0])
        have = np.sort(dense_got[:, j][dense_got[:, j] > 0])
        np.testing.assert_allclose(have, want, rtol=1e-5)
        kept = np.flatnonzero(dense_got[:, j])
        np.testing.assert_allclose(dense_got[kept, j], full[kept, j], rtol=1e-5)  # true similarities
    assert np.all(np.diff(got.indptr) <= data.n_items)
    assert (got.getnnz(axis=0) <= neighbours).all()


def test_ease_above_its_cap_is_an_approximation_the_report_names() -> None:
    data = _random_data()
    assert capped_catalogue(data, data.n_items) is None
    note = capped_catalogue(data, 20)
    assert note is not None and note["max_items"] == 20 and note["catalogue"] == data.n_items
    counts = data.item_counts()
    assert note["events_covered"] == pytest.approx(np.sort(counts)[::-1][:20].sum() / counts.sum(), abs=1e-4)
    assert "approximated" in note["note"] and f"{data.n_items - 20} items are never recommended" in note["note"]
    scores = EASE(l2=10.0, max_items=20).fit(data).score(data.matrix)
    assert np.isfinite(scores).sum(axis=1).max() == 20  # only the capped catalogue is scored


def test_the_baselines_report_notes_ease_above_its_cap_and_the_tuning_sample(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    pq.write_table(synthetic_events(n_users=60, n_items=40), prepared / "interactions.parquet")
    split(prepared, tmp_path / "split", method_params({"method": "user_temporal"}, "user_temporal"))
    params = {
        "tune_metric": "ndcg@10",
        "tune_users": 20,
        "most_popular": {"window_days": [None]},
        "item_knn": {"neighbours": [5], "shrink": [0]},
        "ease": {"l2": [10], "max_items": 12},
        "ease_recency": {"l2": [10], "recency_tau": [3], "max_items": 12},
        "biases": {"reg": [5]},
        "ks": [10],
        "min_rating": None,
    }
    report = run_baselines(tmp_path / "split", tmp_path / "recs", params)
    for name in ("ease", "ease_recency"):
        assert report[name]["approximation"]["max_items"] == 12
        assert "approximated" in report[name]["approximation"]["note"]
    assert "approximation" not in report["item_knn"]
    assert report["validation_users"] == 20 and "20 of the" in report["validation_sample"]
    assert read_json(tmp_path / "recs" / "validation.json")["ease"]["approximation"]["catalogue"] > 12


def test_batched_recommendation_equals_unbatched() -> None:
    data = _random_data(n_users=90)
    fallback = MostPopular().fit(data).scores_
    history = sp.vstack([sp.csr_matrix((5, data.n_items)), data.matrix[5:]]).tocsr()  # 5 cold users
    for model in (ItemKNN(neighbours=10).fit(data), EASE(l2=20.0, max_items=40).fit(data), MostPopular().fit(data)):
        whole = recommend(model, history, 15, fallback, batch_size=10_000)
        for batch in (1, 7, 32):
            np.testing.assert_array_equal(recommend(model, history, 15, fallback, batch_size=batch), whole)


def test_a_tuning_sample_is_seeded_and_keeps_the_users_order() -> None:
    data = _random_data()
    target = pa.table(
        {
            "user_id": pa.array(np.arange(1, 101), pa.int64()),
            "item_id": pa.array(np.full(100, 999), pa.int64()),
            "rating": pa.array(np.full(100, 4.0), pa.float32()),
            "timestamp": pa.array(np.arange(100), pa.int64()),
        }
    )
    evalset = build_eval_set(data, target)
    assert sample_users(evalset, None) is evalset and sample_users(evalset, 10_000) is evalset
    sample = sample_users(evalset, 30)
    assert sample.user_ids.size == 30 and np.all(np.diff(sample.user_ids) > 0)
    assert set(sample.user_ids) <= set(evalset.user_ids)
    np.testing.assert_array_equal(sample_users(evalset, 30).user_ids, sample.user_ids)
    assert not np.array_equal(sample_users(evalset, 30, seed=1).user_ids, sample.user_ids)


def test_ease_projects_sparse_user_rows_as_it_does_dense_ones() -> None:
    data = _random_data(n_users=80, n_items=60)
    model = EASE(l2=15.0, max_items=40).fit(data)
    rows = model.user_rows(data.matrix).astype(np.float64)
    dense = model.eigen_.precision_rows(rows.toarray(), 15.0)
    np.testing.assert_allclose(
        model.eigen_.precision_rows(rows.toarray(), 15.0, sparse=rows), dense, rtol=1e-12, atol=1e-12
    )
    weights = model.weights_.astype(np.float64)  # the dense B: x B scores every kept item the same way
    x = rows.toarray()
    np.testing.assert_allclose(model.score(data.matrix)[:, model.kept_], x @ weights, rtol=1e-4, atol=1e-5)


def test_top_k_on_a_large_catalogue_selects_the_same_items_ties_by_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.baselines import base

    rng = np.random.default_rng(2)
    scores = rng.random((50, 300))
    scores[:, ::7] = 0.5  # many ties, some at the k-th place
    scores[3, :] = -np.inf
    scores[4, 290:] = -np.inf
    scores[4, :290] = -np.inf
    scores[4, 295] = 0.1  # a row with a single finite score
    small = base.top_k(scores, 20)
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 100)
    large = base.top_k(scores, 20)
    assert (small[3] == -1).all() and (large[3] == -1).all()
    assert large[4, 0] == 295 and (large[4, 1:] == -1).all()
    for row in range(50):
        got = large[row][large[row] >= 0]
        want = small[row][small[row] >= 0]
        np.testing.assert_array_equal(scores[row, got], scores[row, want])  # the same values in the same order
        for value in np.unique(scores[row, got]):  # ties in index order
            tied = got[scores[row, got] == value]
            assert (np.diff(tied) > 0).all()
    assert base.top_k(scores, 400).shape == (50, 400) and base.top_k(scores, 400)[0, 300:].max() == -1


def test_most_popular_on_a_large_catalogue_ranks_the_shared_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.baselines import base

    data = _random_data(n_users=150, n_items=90, density=0.2, seed=4)
    model = MostPopular().fit(data)
    model.scores_[::9] = model.scores_[0]  # ties, broken by item index
    history = data.matrix.tolil()
    history[5] = 0  # a cold user: the fallback's order
    history[6, :] = 1  # a user who has seen everything: nothing left
    history = history.tocsr()
    history.eliminate_zeros()
    fallback = np.arange(model.scores_.size, dtype=np.float64)[::-1].copy()
    fallback[3] = -np.inf  # never recommended
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 50)  # the 90 items count as a large catalogue
    fast = recommend(model, history, 20, fallback, batch_size=64)
    monkeypatch.setattr(MostPopular, "shared_scores", None)  # the general path: every user scored
    slow = recommend(model, history, 20, fallback, batch_size=64)
    np.testing.assert_array_equal(fast, slow)
    assert (fast[6] == -1).all() and 3 not in fast[5] and fast[5, 0] == 0
    flat = MostPopular().fit(data)
    flat.scores_[:] = 1.0  # tells no item apart: everyone gets the fallback's order, as in recommend
    monkeypatch.undo()
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 50)
    fast_flat = recommend(flat, history, 20, fallback)
    monkeypatch.setattr(MostPopular, "shared_scores", None)
    np.testing.assert_array_equal(fast_flat, recommend(flat, history, 20, fallback))


def test_ease_on_a_large_catalogue_scores_through_its_dense_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.baselines import base

    data = _random_data(n_users=80, n_items=60)
    for tau in (None, 10.0):
        model = EASE(l2=15.0, max_items=40, recency_tau=tau).fit(data)
        history = data.matrix.tocsr().copy()
        if tau is not None:
            history.data = np.arange(1, history.nnz + 1, dtype=np.float64) % 7 + 1.0  # events back + 1
        eigen_scores = model.score(history)
        monkeypatch.setattr(base, "LARGE_CATALOGUE", 50)
        dense_scores = model.score(history)
        monkeypatch.undo()
        assert model._dense_weights is not None and model._dense_weights.dtype == np.float32
        assert np.isneginf(dense_scores[:, np.setdiff1d(np.arange(model.n_items_), model.kept_)]).all()
        np.testing.assert_allclose(dense_scores[:, model.kept_], eigen_scores[:, model.kept_], rtol=1e-4, atol=1e-5)


def test_top_k_on_a_large_catalogue_with_many_equal_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.baselines import base

    rng = np.random.default_rng(5)
    scores = np.round(rng.random((40, 400)), 1)  # eleven distinct values: ties everywhere
    scores[:10, 30:] = -np.inf  # EASE outside its kept items: fewer finite scores than k in some rows
    scores[10:20, 60:] = 0.0  # item-kNN outside the neighbours: the k-th value is a zero shared by hundreds
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 100)
    got = base.top_k(scores.astype(np.float32), 50)
    for row in range(40):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        want = finite[np.lexsort((finite, -scores[row, finite]))][:50]  # best first, ties by index
        np.testing.assert_array_equal(got[row, : want.size], want)
        assert (got[row, want.size :] == -1).all()


@pytest.mark.parametrize(("k", "seed"), [(1, 0), (7, 1), (60, 2), (149, 3), (300, 4)])
def test_top_k_by_a_bound_equals_a_full_sort(monkeypatch: pytest.MonkeyPatch, k: int, seed: int) -> None:
    """Whatever the bound from every few columns: rows of distinct values, of ties at zero,
    of few finite values, and k from 1 to the catalogue's size."""
    from movierec.baselines import base

    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((30, 300)).astype(np.float32)
    scores[5:15] = np.where(rng.random((10, 300)) < 0.9, 0.0, np.abs(scores[5:15]))  # mostly zeros
    scores[15:20, rng.random(300) < 0.8] = -np.inf  # few finite
    scores[20:25] = np.round(scores[20:25])  # ties everywhere
    scores[25, :] = -np.inf
    monkeypatch.setattr(base, "LARGE_CATALOGUE", 100)
    got = base.top_k(scores, k)
    for row in range(30):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        want = finite[np.lexsort((finite, -scores[row, finite]))][:k]
        np.testing.assert_array_equal(got[row, : want.size], want)
        assert (got[row, want.size :] == -1).all()

"""The ranker: leak-free pairs, features from the past, learning, and a fresh-process export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from movierec.models.inputs import user_histories
from movierec.models.ranking import candidate_rows, fit_ranker, rerank, training_pairs
from movierec.models.ranking_export import save_ranker
from movierec.models.ranking_features import DENSE_FEATURES, RankingContext, pair_features

RANKER = {"hidden_units": [16], "learning_rate": 0.01, "batch_size": 128, "epochs": 4, "rating_weight": 0.2}


@pytest.fixture(scope="module")
def window(world: dict, fitted) -> dict:
    """Known events before a cut, label events after it, and the context at the cut."""
    events = world["events"]
    ts = events.column("timestamp").to_numpy()
    cut = int(np.quantile(ts, 0.8))
    known = events.filter(pc.less(events.column("timestamp"), cut))
    labels = events.filter(pc.greater_equal(events.column("timestamp"), cut))
    ctx = RankingContext.build(known, world["catalogue"], fitted.embed_items(), world["users"], cut)
    histories = user_histories(known)
    users = np.unique(labels.column("user_id").to_numpy())
    query = fitted.embed_users(users, [histories.get(int(u), np.array([], np.int64)) for u in users])
    return {"known": known, "labels": labels, "ctx": ctx, "users": users, "query": query, "cut": cut}


def test_pairs_take_positives_from_the_candidates_only(window: dict) -> None:
    feats, y, ratings = training_pairs(
        window["ctx"],
        dict(zip(window["users"].tolist(), window["query"])),
        window["labels"],
        k=10,
        random_negatives=3,
        seed=0,
    )
    assert set(np.unique(y)) <= {0.0, 1.0} and 0 < y.mean() < 1
    assert (ratings[y == 0] == 0).all() and (ratings[y == 1] >= 1).all()
    assert set(feats) >= set(DENSE_FEATURES)
    # users with no known history are flagged cold
    cold = np.array([u not in window["ctx"].histories for u in window["users"]])
    assert feats["user_is_cold"].max() == (1.0 if cold.any() else 0.0)


def test_features_come_from_the_known_past(window: dict, world: dict) -> None:
    ctx = window["ctx"]
    known_counts = np.bincount(
        world["catalogue"].rows_of(window["known"].column("item_id").to_numpy()), minlength=len(world["catalogue"])
    )
    # the catalogue here was built on all events, so the context must use its own known events for users
    user = int(window["users"][0])
    feats = pair_features(ctx, np.array([user]), np.array([0]), window["query"][:1])
    expected = np.log1p(sum(1 for u in window["known"].column("user_id").to_pylist() if u == user))
    assert feats["user_log_count"][0] == pytest.approx(expected, rel=1e-5)
    assert known_counts.sum() == window["known"].num_rows


def test_genre_affinity_by_hand() -> None:
    from movierec.models.inputs import Catalogue

    cat = Catalogue(
        item_id=np.array([1, 2, 3]),
        genres=np.array([["A", ""], ["A", "B"], ["C", ""]], dtype=object),
        title_tokens=np.full((3, 1), "", dtype=object),
        year=np.zeros(3, np.float32),
        tags=None,
        n_interactions=np.ones(3, np.float32),
        n_recent=np.ones(3, np.float32),
        mean_rating=np.full(3, 3.0, np.float32),
        first_ts=np.zeros(3, np.int64),
    )
    known = pa.table(
        {
            "user_id": pa.array([7, 7], pa.int64()),
            "item_id": pa.array([1, 2], pa.int64()),
            "rating": pa.array([4.0, 5.0], pa.float32()),
            "timestamp": pa.array([1, 2], pa.int64()),
        }
    )
    ctx = RankingContext.build(known, cat, np.eye(3, dtype=np.float32), None, 10)
    feats = pair_features(ctx, np.array([7, 7]), np.array([1, 2]), np.zeros((2, 3), np.float32))
    # history genres: item 1 {A}, item 2 {A, B} -> shares A 1.0, B 0.5, C 0
    assert feats["genre_affinity"].tolist() == pytest.approx([1.5, 0.0])
    assert feats["user_mean_rating"].tolist() == pytest.approx([4.5, 4.5])


def test_ranker_learns_and_reorders_candidates(window: dict) -> None:
    feats, y, ratings = training_pairs(
        window["ctx"],
        dict(zip(window["users"].tolist(), window["query"])),
        window["labels"],
        k=10,
        random_negatives=3,
        seed=0,
    )
    ranker = fit_ranker(feats, y, ratings, RANKER, seed=3)
    assert ranker.history[-1]["loss"] < ranker.history[0]["loss"]
    scores, _predicted = ranker.predict(feats)
    assert scores[y == 1].mean() > scores[y == 0].mean()
    seen = [np.array([], np.int64)] * len(window["users"])
    cands = candidate_rows(window["ctx"], window["query"], window["users"], 10, seen)
    ranked = rerank(ranker, window["ctx"], window["users"], window["query"], cands)
    assert sorted(ranked[0][ranked[0] >= 0].tolist()) == sorted(cands[0][cands[0] >= 0].tolist())
    window["ranker"], window["feats"] = ranker, feats


RELOAD = """
import sys, numpy as np, movierec
from movierec.models.ranking_export import load_ranker, predict_exported
feats = dict(np.load(sys.argv[2], allow_pickle=True))
score, rating = predict_exported(load_ranker(sys.argv[1]), {k: v.astype(object) if v.dtype.kind in "OU" else v for k, v in feats.items()})
np.save(sys.argv[3], np.stack([score, rating]))
"""


def test_ranker_export_reloads_in_a_fresh_process(window: dict, tmp_path: Path) -> None:
    if "ranker" not in window:
        pytest.skip("needs the trained ranker from the previous test")
    ranker, feats = window["ranker"], window["feats"]
    save_ranker(ranker, tmp_path / "ranking")
    np.savez(tmp_path / "feats.npz", **{k: (v.astype(str) if v.dtype == object else v) for k, v in feats.items()})
    out = tmp_path / "out.npy"
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(tmp_path / "ranking"), str(tmp_path / "feats.npz"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    score, rating = np.load(out)
    expected_score, expected_rating = ranker.predict(feats)
    assert np.allclose(score, expected_score, atol=1e-5)
    assert np.allclose(rating, expected_rating, atol=1e-4)

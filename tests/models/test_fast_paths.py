"""The NumPy forward passes reproduce the exported SavedModels (the server's fast paths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from movierec.models.fast_towers import NumpyQueryTower
from movierec.models.inputs import query_features


def test_numpy_query_tower_matches_the_saved_model(exported: Path, world: dict) -> None:
    fast = NumpyQueryTower.load(exported / "query_tower")
    assert fast is not None
    signature = tf.saved_model.load(str(exported / "query_tower")).signatures["serving_default"]
    users = np.array([1, 2, 3, 999_999, 5])
    histories = [
        np.array([1, 5, 9]),
        np.array([], np.int64),
        np.array([2, 6, 10, 14, 18, 22, 26, 30, 34, 38]),
        np.array([3, 7, 123_456]),
        np.array([4]),
    ]  # 123456: an item the model never saw
    feats = query_features(users, histories, world["users"], 8)
    feats["gender"][3] = "unknown-gender"
    feats["age"][4] = np.nan
    want = signature(**{k: tf.constant(v) for k, v in feats.items()})["embedding"].numpy()
    assert np.allclose(fast(feats), want, atol=1e-5)


def test_numpy_query_tower_with_a_gru_matches_the_saved_model(world: dict, tmp_path: Path) -> None:
    """The sequence-aware (GRU) query tower: its NumPy GRU reproduces Keras', padding and
    unknown items (masked steps) included."""
    from models_config import CONFIG, WIDTHS

    from movierec.models.export import save_towers
    from movierec.models.retrieval import fit_retrieval

    config = {**CONFIG, "epochs": 1, "query": {**CONFIG["query"], "sequence": "gru"}}
    fitted = fit_retrieval(world["events"], world["catalogue"], world["users"], config, seed=3)
    assert fitted.model.query_tower.gru is not None
    save_towers(fitted, tmp_path / "retrieval", WIDTHS)
    fast = NumpyQueryTower.load(tmp_path / "retrieval" / "query_tower")
    assert fast is not None and fast.gru is not None
    signature = tf.saved_model.load(str(tmp_path / "retrieval" / "query_tower")).signatures["serving_default"]
    histories = [np.array([1, 5, 9]), np.array([], np.int64), np.array([3, 123_456, 7]), np.array([4] * 12)]
    feats = query_features(np.array([1, 2, 3, 4]), histories, world["users"], 8)
    want = signature(**{k: tf.constant(v) for k, v in feats.items()})["embedding"].numpy()
    assert np.allclose(fast(feats), want, atol=1e-5)
    # order matters to a GRU (a mean would not see it)
    swapped = query_features(np.array([1]), [np.array([9, 5, 1])], world["users"], 8)
    assert not np.allclose(fast(swapped), fast({k: v[:1] for k, v in feats.items()}), atol=1e-4)


def test_numpy_ranker_matches_the_saved_model(tmp_path: Path) -> None:
    from movierec.models.ranking import fit_ranker
    from movierec.models.ranking_export import NumpyRanker, load_ranker, predict_exported, save_ranker
    from movierec.models.ranking_features import CATEGORICAL_FEATURES, DENSE_FEATURES

    rng = np.random.default_rng(0)
    n = 400
    feats = {name: rng.normal(size=n).astype(np.float32) for name in DENSE_FEATURES}
    feats.update({name: rng.choice(["a", "b", "c", ""], size=n).astype(object) for name in CATEGORICAL_FEATURES})
    labels = (feats["retrieval_score"] > 0).astype(np.float32)
    ranker = fit_ranker(
        feats,
        labels,
        labels * 4.0,
        {"hidden_units": [8, 4], "learning_rate": 0.01, "batch_size": 64, "epochs": 2, "rating_weight": 0.2},
        seed=1,
    )
    save_ranker(ranker, tmp_path)
    feats["gender"][:5] = "never-seen"
    want_scores, want_ratings = predict_exported(load_ranker(tmp_path), feats)
    got_scores, got_ratings = NumpyRanker.load(tmp_path).predict(feats)
    assert np.allclose(got_scores, want_scores, atol=1e-5)
    assert np.allclose(got_ratings, want_ratings, atol=1e-4)

"""The baselines stage tunes on validation, refits, and writes lists the evaluate step accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from movierec.baselines.run import grid, run_baselines
from movierec.errors import ParamsError
from movierec.evaluation.report import evaluate, format_table
from movierec.features import build_features
from movierec.recording import Recorder
from movierec.split import split

PARAMS = {
    "tune_metric": "ndcg@10",
    "ks": [5, 10],
    "min_rating": None,
    "most_popular": {"window_days": [None, 30]},
    "item_knn": {"neighbours": [5, 20], "shrink": [0]},
    "ease": {"l2": [1, 10, 100], "max_items": 1000},
    "ease_recency": {"l2": [1, 10], "recency_tau": [2, 20], "max_items": 1000},
    "biases": {"reg": [1, 10]},
}


@pytest.fixture
def pipeline(prepared_dir: Path, tmp_path: Path) -> dict[str, Path]:
    dirs = {"split": tmp_path / "split", "features": tmp_path / "features", "recs": tmp_path / "recs"}
    split(prepared_dir, dirs["split"], {"method": "temporal", "valid_frac": 0.15, "test_frac": 0.15})
    build_features(prepared_dir, dirs["split"], dirs["features"], {"history_max_len": 10})
    return dirs


def test_grid_expands_lists_and_keeps_scalars() -> None:
    assert grid({"a": [1, 2], "b": 3}, "x") == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    with pytest.raises(ParamsError, match="baselines.x.a"):
        grid({"a": []}, "x")


def test_baselines_choose_from_their_grid_and_write_full_lists(pipeline: dict[str, Path]) -> None:
    report = run_baselines(pipeline["split"], pipeline["recs"], PARAMS)
    assert report["ease"]["chosen"]["l2"] in (1, 10, 100)
    best = max(r["metrics"]["ndcg@10"] for r in report["ease"]["grid"])
    assert report["ease"]["validation"]["ndcg@10"] == best
    test_users = set(pq.read_table(pipeline["split"] / "test.parquet").column("user_id").to_pylist())
    assert report["ease_recency"]["chosen"]["recency_tau"] in (2, 20)
    for name in ("most_popular", "item_knn", "ease", "ease_recency"):
        table = pq.read_table(pipeline["recs"] / f"{name}.parquet")
        assert set(table.column("user_id").to_pylist()) <= test_users
        assert all(len(lst) == 10 for lst in table.column("item_ids").to_pylist())
    assert json.loads((pipeline["recs"] / "validation.json").read_text())["tune_metric"] == "ndcg@10"


def test_evaluate_scores_every_system_and_personal_models_beat_random(
    pipeline: dict[str, Path], tmp_path: Path
) -> None:
    run_baselines(pipeline["split"], pipeline["recs"], PARAMS)
    # a random system, written in the same format, as the floor
    ease = pq.read_table(pipeline["recs"] / "ease.parquet")
    catalogue = np.unique(pq.read_table(pipeline["features"] / "test" / "items.parquet").column("item_id").to_numpy())
    rng = np.random.default_rng(0)
    random_dir = tmp_path / "random"
    random_dir.mkdir()
    import pyarrow as pa

    pq.write_table(
        pa.table(
            {
                "user_id": ease.column("user_id"),
                "item_ids": [rng.choice(catalogue, 10, replace=False).tolist() for _ in range(ease.num_rows)],
            }
        ),
        random_dir / "random.parquet",
    )
    result = evaluate(
        pipeline["split"],
        pipeline["features"],
        [pipeline["recs"], random_dir],
        Recorder(tmp_path, tmp_path / "plots"),
        {"ks": [5, 10], "min_rating": None},
    )
    assert (tmp_path / "metrics.json").exists()
    systems = result["systems"]
    assert set(systems) == {"most_popular", "item_knn", "ease", "ease_recency", "random"}
    # a paired comparison of every system with EASE, and the random system loses clearly
    vs_ease = result["comparisons"]["ease"]["random"]["ndcg@5"]
    assert vs_ease["ratio"] < 1.0 and vs_ease["low"] <= vs_ease["ratio"] <= vs_ease["high"]
    assert result["comparisons"]["best_baseline"]["random"]["ndcg@5"]["baseline"] in result["baselines"]
    warm = ~np.isnan([systems["ease"].get("warm", {}).get("ndcg@10", np.nan)])
    assert warm.all()
    assert systems["ease"]["warm"]["ndcg@10"] > systems["random"]["warm"]["ndcg@10"]
    assert systems["item_knn"]["warm"]["recall@10"] > systems["random"]["warm"]["recall@10"]
    assert set(result["ratings"]) == {"biases", "global_mean"}
    assert result["ratings"]["biases"]["rmse"] > 0
    assert (tmp_path / "plots" / "metrics_at_k.csv").read_text().startswith("system,k,recall,ndcg")
    assert (tmp_path / "plots" / "metrics_at_k.png").stat().st_size > 1000
    table = format_table(json.loads((tmp_path / "metrics.json").read_text()))
    assert "ease" in table and "recall@10" in table and "95% CI" in table

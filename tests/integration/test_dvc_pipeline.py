"""End to end: `dvc repro` in a fresh repository on a tiny synthetic dataset, then push and pull."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from dvc_project import make_dvc_project, run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


_run = run


@pytest.fixture
def repo(tmp_path: Path, csv_dataset: Path) -> tuple[Path, dict[str, str]]:
    """A fresh git+DVC repository holding the project's pipeline, pointed at the tiny dataset."""
    return make_dvc_project(tmp_path, csv_dataset)


def test_dvc_repro_runs_every_stage_and_reports_the_baselines(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    out = _run(["dvc", "repro"], path, env)
    for stage in (
        "fetch",
        "prepare",
        "split",
        "features",
        "baselines",
        "tune",
        "train_retrieval",
        "build_index",
        "train_ranking",
        "ablation",
        "evaluate",
        "bundle",
        "register",
    ):
        assert f"Running stage '{stage}'" in out.stdout
    metrics = json.loads((path / "reports" / "metrics.json").read_text())
    assert set(metrics["systems"]) == {"most_popular", "item_knn", "ease", "ease_recency", "retrieval", "chain"}
    assert set(metrics["bars"]) >= {
        "retrieval_recall@100_over_best_baseline",
        "chain_ndcg@10_over_ease",
        "chain_ndcg@10_over_best_baseline",
    }
    low, high = (metrics["systems"]["chain"]["interval"]["ndcg@10"][k] for k in ("low", "high"))
    assert low <= metrics["systems"]["chain"]["all"]["ndcg@10"] <= high
    assert metrics["systems"]["chain"]["seeds"]["runs"] == 2  # mean and spread over the two seeds
    tuning = json.loads((path / "reports" / "tuning.json").read_text())
    assert tuning["chosen"]["retrieval"]["embedding_dim"] in (8, 16) and tuning["retrieval"]["trials"] == 2
    retrieval_meta = json.loads((path / "checkpoints" / "retrieval" / "retrieval.json").read_text())
    assert retrieval_meta["embedding_dim"] == tuning["chosen"]["retrieval"]["embedding_dim"]  # the choice is used
    ablation = json.loads((path / "reports" / "ablation.json").read_text())
    assert set(ablation["chain"]) == {"retrieval_order", "full", "no_ease"}
    assert set(ablation["retrieval"]) == {"id_only", "plus_logq"}
    manifest = json.loads((path / "checkpoints" / "manifest.json").read_text())
    assert manifest["version"] and manifest["parts"]["ranking/pointwise"]
    for part in ("retrieval/query_tower", "retrieval/scann", "retrieval/faiss/index.faiss", "ranking/pointwise"):
        assert (path / "checkpoints" / part).exists(), part
    assert metrics["systems"]["ease"]["all"]["recall@10"] > 0
    assert "ease" in out.stdout and "recall@10" in out.stdout  # the printed table
    split_report = json.loads((path / "reports" / "split.json").read_text())
    assert split_report["method"] == "user_temporal" and split_report["test_cold_users_share"] == 0
    assert (path / "dvc.lock").exists()
    registered = json.loads((path / "reports" / "registry.json").read_text())  # an MLflow run and version
    assert registered["version"] == 1 and registered["bundle_version"] == manifest["version"]
    assert (path / "mlflow" / "mlflow.db").exists()

    # nothing changed: nothing re-runs
    again = _run(["dvc", "repro"], path, env)
    assert "Running stage" not in again.stdout

    # a knob of one stage re-runs that stage and what depends on it, not what precedes it
    params = yaml.safe_load((path / "params.yaml").read_text())
    params["evaluate"]["ks"] = [10, 20]
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _run(["dvc", "repro"], path, env)
    assert "Running stage 'evaluate'" in changed.stdout
    assert "Running stage 'split'" not in changed.stdout and "Running stage 'prepare'" not in changed.stdout
    assert json.loads((path / "reports" / "registry.json").read_text())["version"] == 2  # a new evaluation

    # push to the local remote, lose the data, pull it back
    _run(["dvc", "push"], path, env)
    shutil.rmtree(path / "data")
    shutil.rmtree(path / ".dvc" / "cache")
    _run(["dvc", "pull"], path, env)
    assert (path / "data" / "split" / "train.parquet").exists()
    status = _run(["dvc", "status"], path, env)
    assert "up to date" in status.stdout

"""A fresh git + DVC repository holding the project's pipeline on a tiny dataset (for the
integration tests of ``dvc repro`` and of the Airflow DAG). Imported by name, not a conftest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output's tail when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def tiny_pipeline_params(dataset: Path) -> dict:
    """The repository's params.yaml, shrunk so the whole pipeline takes a minute or two."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["source"] = str(dataset)
    params["baselines"]["item_knn"] = {"neighbours": [5, 10], "shrink": [0]}
    params["baselines"]["ease"]["l2"] = [10, 100]
    params["baselines"]["ease_recency"].update(l2=[10, 100], recency_tau=[3, 30])
    params["retrieval"].update(
        embedding_dim=16,
        hidden_units=32,
        batch_size=64,
        epochs=2,
        history_len=10,
        ablation={"id_only": params["retrieval"]["ablation"]["id_only"], "plus_logq": {}},
    )
    params["ranking"].update(
        hidden_units=[16],
        epochs=1,
        candidates=20,
        random_negatives=5,
        ablation={"full": {}, "no_ease": {"drop": ["ease_score", "ease_recency_score"]}},
    )
    params["train"]["seeds"] = [1, 2]
    params["tune"]["retrieval"].update(
        trials=2, space={"embedding_dim": {"choices": [8, 16]}, "epochs": {"low": 1, "high": 2}}
    )
    params["tune"]["ranking"].update(trials=2, space={"epochs": {"low": 1, "high": 2}})
    params["index"].update(eval_queries=100)
    return params


def make_dvc_project(base: Path, dataset: Path, params: dict | None = None) -> tuple[Path, dict[str, str]]:
    """``base/repo``: git and DVC initialised, the pipeline (``dvc.yaml``, ``src/``) copied in,
    a local DVC remote, ``params.yaml`` shrunk for ``dataset``. Returns it and a subprocess env."""
    repo = base / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    (repo / ".gitignore").write_text("/checkpoints/*\n/data/\n/mlflow/\n/reports/timings/\n")
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = params or tiny_pipeline_params(dataset)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run(["git", "init", "-q"], repo, env)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.analytics", "false"], repo, env)
    run(["dvc", "remote", "add", "-d", "local", str(base / "remote")], repo, env)
    return repo, env

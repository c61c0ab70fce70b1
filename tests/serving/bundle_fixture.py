"""Builds a tiny but real served bundle (every pipeline step on a synthetic dataset) and its settings.

Shared by the serving tests; imported by name (``from bundle_fixture import ...``), never as
``conftest``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from processes import free_port, stop_process_group, wait_until  # noqa: F401  (re-exported)
from synthetic import write_csv_dataset

import movierec  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key"

STEPS: tuple[list[str], ...] = (
    ["data", "fetch"],
    ["data", "prepare"],
    ["split"],
    ["features"],
    ["baselines"],
    ["train", "retrieval"],
    ["index", "build"],
    ["train", "ranking"],
    ["evaluate", "--recs", "data/recs/baselines", "data/recs/retrieval", "data/recs/ranking"],
    ["bundle"],
)


@dataclass(frozen=True)
class TinyProject:
    """A project folder taken through the whole pipeline, and where its parts are."""

    root: Path
    params: dict[str, Any]

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def interactions(self) -> Path:
        return self.root / "data" / "prepared" / "interactions.parquet"

    @property
    def users(self) -> Path:
        return self.root / "data" / "prepared" / "users.parquet"

    def env(self, database: Path, bundle_dir: Path | None = None, api_key: str = API_KEY) -> dict[str, str]:
        """``MOVIEREC_*`` variables that point a server at this project."""
        return {
            "MOVIEREC_BUNDLE_DIR": str(bundle_dir or self.checkpoints),
            "MOVIEREC_DATABASE_PATH": str(database),
            "MOVIEREC_API_KEY": api_key,
        }


def make_settings(project: TinyProject, database: Path, **overrides: Any) -> Any:
    """Settings pointing at ``project`` (explicit values: the environment is not read for these)."""
    from movierec.serving.settings import Settings

    values: dict[str, Any] = dict(
        bundle_dir=project.checkpoints,
        database_path=database,
        api_key=API_KEY,
    )
    return Settings(**{**values, **overrides})


def tiny_params(dataset: Path) -> dict[str, Any]:
    """The repository's params.yaml, shrunk so every step takes seconds."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = str(dataset)
    params["baselines"]["most_popular"]["window_days"] = [None, 30]
    params["baselines"]["item_knn"] = {"neighbours": [5, 10], "shrink": [0]}
    params["baselines"]["ease"]["l2"] = [10, 100]
    params["baselines"]["ease_recency"].update(l2=[10], recency_tau=[3, 30])
    params["baselines"]["biases"]["reg"] = [5]
    params["retrieval"].update(embedding_dim=16, hidden_units=32, batch_size=64, epochs=2, history_len=10, ablation={})
    params["ranking"].update(hidden_units=[16], epochs=1, candidates=20, random_negatives=5)
    params["train"]["seeds"] = [42]
    params["index"].update(eval_queries=100)
    return params


def build_tiny_project(base: Path, final_fit_all: bool = True) -> TinyProject:
    """Run every pipeline step through ``movierec.cli.main`` in ``base/project``.

    ``final_fit_all=False`` serves the evaluated models (fitted before the test period).
    """
    from movierec.cli import main

    project = base / "project"
    project.mkdir(parents=True)
    dataset = write_csv_dataset(base / "tiny-latest")
    params = tiny_params(dataset)
    params["train"]["final_fit_all"] = final_fit_all
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    with chdir(project):
        for argv in STEPS:
            assert main(argv) == 0, f"movierec {' '.join(argv)} failed"
    return TinyProject(project, params)


def rebundle(project: TinyProject, target: Path, seed: int) -> Path:
    """A copy of the bundle with a different version (same parts, params with another seed)."""
    from movierec.cli import main

    shutil.copytree(project.checkpoints, target)
    params = {**project.params, "train": {**project.params["train"], "seeds": [seed]}}
    params_file = target.parent / f"params-{seed}.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    with chdir(project.root):
        assert main(["--params", str(params_file), "bundle", "--checkpoints", str(target)]) == 0
    return target


@contextlib.contextmanager
def chdir(path: Path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of every sample called ``name`` in a Prometheus exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    return sum(v for got, v in metric_samples(text, name) if all(got.get(k) == w for k, w in labels.items()))

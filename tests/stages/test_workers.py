"""A training stage's role in a cluster: the chief writes where the stage writes, every other
worker writes into a scratch folder that is removed (the strategy itself is stubbed here; the
integration test runs the real one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from movierec.models import distribute
from movierec.orchestration.cluster import TF_CONFIG, tf_config
from movierec.paths import ProjectPaths
from movierec.stages.workers import SCRATCH_ENV, worker_layout

OUTPUTS = ("checkpoints", "models", "reports")
ADDRESSES = ["127.0.0.1:1", "127.0.0.1:2"]


@pytest.fixture
def stub_strategy(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    strategy = SimpleNamespace(num_replicas_in_sync=2)
    monkeypatch.setattr(distribute, "strategy_from_env", lambda: strategy)
    return strategy


def test_without_tf_config_nothing_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(TF_CONFIG, raising=False)
    paths = ProjectPaths.under(tmp_path)
    with worker_layout(paths, OUTPUTS) as (strategy, out):
        assert strategy is None and out == paths


def test_the_chief_writes_where_the_stage_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stub_strategy: SimpleNamespace
) -> None:
    monkeypatch.setenv(TF_CONFIG, tf_config(ADDRESSES, 0))
    paths = ProjectPaths.under(tmp_path)
    with worker_layout(paths, OUTPUTS) as (strategy, out):
        assert strategy is stub_strategy and out == paths


@pytest.mark.parametrize("fails", [False, True])
def test_another_worker_writes_into_scratch_that_is_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stub_strategy: SimpleNamespace, fails: bool
) -> None:
    monkeypatch.setenv(TF_CONFIG, tf_config(ADDRESSES, 1))
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    paths = ProjectPaths.under(tmp_path / "project")
    seen: dict[str, Path] = {}
    try:
        with worker_layout(paths, OUTPUTS) as (strategy, out):
            assert strategy is stub_strategy
            for name in ProjectPaths.__dataclass_fields__:
                moved = getattr(out, name)
                if name in OUTPUTS:
                    assert moved.is_relative_to(tmp_path / "scratch"), name
                    assert moved != getattr(paths, name)
                    moved.mkdir(parents=True)
                    (moved / "written").write_text("a worker's copy")
                    seen[name] = moved
                else:  # inputs are read where they are
                    assert moved == getattr(paths, name), name
            assert dataclasses.replace(out, **{n: getattr(paths, n) for n in OUTPUTS}) == paths
            if fails:
                raise RuntimeError("training failed")
    except RuntimeError:
        assert fails
    assert seen and not any(p.exists() for p in seen.values())
    assert list((tmp_path / "scratch").iterdir()) == []  # the scratch folder itself is gone
    assert not (tmp_path / "project").exists()  # nothing was written where the chief writes

"""The DAG form's ``training_workers``: the training stages of a task run on that many workers,
the others as before, and the form's field is not a setting written into params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from movierec.orchestration import tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple]:
    seen: list[tuple] = []
    monkeypatch.setattr(tasks, "run_stage", lambda stage, project: seen.append(("one process", stage)) or 1.0)
    monkeypatch.setattr(
        tasks, "run_on_workers", lambda stage, project, workers: seen.append((f"{workers} workers", stage)) or 2.0
    )
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)  # run_task changes directory and sets a variable: both restored after
    monkeypatch.setenv("MOVIEREC_LAUNCHED_BY", "test")
    return seen


@pytest.mark.parametrize(
    ("task", "form", "expected"),
    [
        (
            "train_retrieval",
            {"training_workers": 3},
            [("one process", "tune"), ("3 workers", "train_retrieval"), ("one process", "build_index")],
        ),
        ("train_ranking", {"training_workers": 2}, [("2 workers", "train_ranking")]),
        ("train_ranking", {"training_workers": None}, [("one process", "train_ranking")]),
        ("train_ranking", {"training_workers": 1}, [("one process", "train_ranking")]),
        ("evaluate_models", {"training_workers": 4}, [("one process", s) for s in tasks.TASKS["evaluate_models"]]),
    ],
)
def test_only_the_training_stages_run_on_workers(
    calls: list[tuple], tmp_path: Path, task: str, form: dict, expected: list[tuple]
) -> None:
    before = (tmp_path / "params.yaml").read_text()
    summary = tasks.run_task(task, form, tmp_path)
    assert calls == expected
    assert summary["params_changed"] == {} and (tmp_path / "params.yaml").read_text() == before
    assert summary.get("workers") == (form["training_workers"] if any("workers" in c[0] for c in calls) else None)

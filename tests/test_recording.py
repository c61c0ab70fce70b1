"""The one sink: every record lands in its file and reaches every backend."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from movierec.errors import DataError
from movierec.io import read_json
from movierec.recording import Recorder, numbers


class Collecting:
    """A backend that keeps what it is sent (a stand-in for a tracking server, in a unit test)."""

    def __init__(self) -> None:
        self.metrics: list[tuple[str, dict[str, float]]] = []
        self.artifacts: list[Path] = []
        self.tables: list[tuple[str, Path]] = []

    def log_table(self, name: str, path: Path) -> None:
        self.tables.append((name, path))

    def log_metrics(self, name: str, values: dict[str, float]) -> None:
        self.metrics.append((name, values))

    def log_artifact(self, path: Path) -> None:
        self.artifacts.append(path)


def test_numbers_flattens_numeric_leaves_only() -> None:
    report = {"a": 1, "b": {"c": 0.5, "d": "text", "e": True, "f": float("nan")}, "g": [1, 2]}
    assert numbers(report) == {"a": 1.0, "b.c": 0.5}


def test_records_go_to_their_files_and_to_every_backend(tmp_path: Path) -> None:
    backend = Collecting()
    recorder = Recorder(tmp_path / "reports", backends=[backend])
    path = recorder.metrics("retrieval", {"valid_best": 0.25, "per_seed": {"42": {"chosen_epochs": 3}}})
    assert path == tmp_path / "reports" / "retrieval.json"
    assert read_json(path)["per_seed"]["42"]["chosen_epochs"] == 3
    table = recorder.table("curve", [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5, "auc": 0.7}])
    assert table == tmp_path / "reports" / "plots" / "curve.csv"
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["auc"] == "0.7" and rows[0]["auc"] == ""
    figure = recorder.figure("f.png", lambda handle: handle.write(b"\x89PNG"))
    assert figure.read_bytes() == b"\x89PNG"
    assert backend.metrics == [("retrieval", {"valid_best": 0.25, "per_seed.42.chosen_epochs": 3.0})]
    assert backend.artifacts == [path, figure] and backend.tables == [("curve", table)]
    assert not list((tmp_path / "reports").rglob("*.tmp*"))  # written atomically, nothing left over
    assert recorder.read("retrieval")["valid_best"] == 0.25
    with pytest.raises(DataError, match="no ablation report yet"):
        recorder.read("ablation")


def test_plots_may_live_elsewhere(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "reports", tmp_path / "elsewhere")
    assert recorder.table("t", [{"x": 1}]).parent == tmp_path / "elsewhere"


def test_timings_and_replay_to_a_backend_that_joins_later(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "reports")
    recorder.metrics("split", {"users": 3, "method": "user_temporal"})
    table = recorder.table("retrieval_epochs", [{"epoch": 1, "loss": 2.0}])
    figure = recorder.figure("curve.png", lambda handle: handle.write(b"png"))
    recorder.timing("train_retrieval", 12.3456)
    recorder.timing("tune", 3)
    assert recorder.timings() == {"train_retrieval": 12.346, "tune": 3.0}
    late = Collecting()
    recorder.replay(late)
    assert late.metrics == [("split", {"users": 3.0})]  # timings are not reports
    assert late.tables == [("retrieval_epochs", table)] and late.artifacts == [
        tmp_path / "reports" / "split.json",
        figure,
    ]
    assert Recorder(tmp_path / "none").timings() == {}

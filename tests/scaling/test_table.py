"""The scaling table: growth exponents, the table from run records, and how one command is measured."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

from movierec.errors import DataError
from movierec.io import read_json
from movierec.scaling.measure import measured
from movierec.scaling.runner import ScaleRun, pipeline_order
from movierec.scaling.table import TOTAL, growth_exponent, markdown, scaling_table, write_scaling

ROOT = Path(__file__).resolve().parents[2]


def test_the_growth_exponent_is_the_slope_in_log_log() -> None:
    sizes = [1e6, 5e6, 25e6]
    assert growth_exponent(sizes, [3.0 * s**1.5 for s in sizes]) == pytest.approx(1.5, abs=1e-3)
    assert growth_exponent(sizes, [7.0, 7.0, 7.0]) == pytest.approx(0.0, abs=1e-9)
    assert growth_exponent([1e6], [2.0]) is None
    assert growth_exponent([1e6, 1e6], [2.0, 3.0]) is None  # one size twice: no slope
    assert growth_exponent(sizes, [1.0, 0.0, 2.0]) is None


def _run(events: int, seconds: dict[str, float], status: str = "complete") -> dict:
    stages = {
        name: {"wall_s": s, "peak_rss_mb": 100.0 * s, "user_s": s / 2, "system_s": 0.0, "returncode": 0 if s > 0 else 1}
        for name, s in seconds.items()
    }
    return {
        "dataset": {"ratings": events, "users": events // 156, "items": events // 400},
        "stages": stages,
        "status": status,
        "pipeline_wall_s": sum(s for n, s in seconds.items() if n != "synth"),
    }


def test_the_table_lines_up_runs_by_size_and_fits_each_stage(tmp_path: Path) -> None:
    runs = [
        _run(5_000_000, {"synth": 10.0, "prepare": 5.0, "train": 50.0}),
        _run(1_000_000, {"synth": 2.0, "prepare": 1.0, "train": 10.0}),
        _run(25_000_000, {"synth": 50.0, "prepare": 25.0, "train": -1.0}, status="failed"),
    ]
    table = scaling_table(runs)
    assert table["sizes"] == [1_000_000, 5_000_000, 25_000_000]
    assert table["stages"]["prepare"]["wall_s"] == [1.0, 5.0, 25.0]
    assert table["stages"]["prepare"]["time_exponent"] == pytest.approx(1.0, abs=1e-3)
    assert table["stages"]["train"]["wall_s"] == [10.0, 50.0, None]  # failed at 25M: left out of the fit
    assert table["stages"]["train"]["time_exponent"] == pytest.approx(1.0, abs=1e-3)
    assert table["stages"][TOTAL]["wall_s"] == [11.0, 55.0, None]  # an unfinished run has no total
    assert table["stages"][TOTAL]["cpu_s"] == [5.5, 27.5, None] and table["stages"]["prepare"]["cpu_s"][2] == 12.5
    assert table["stages"]["prepare"]["peak_rss_gb"][0] == pytest.approx(100 / 1024, abs=1e-3)
    assert table["stages"]["train"]["by_size"] == {
        "1M": {"wall_s": 10.0, "cpu_s": 5.0, "peak_rss_gb": 0.977},
        "5M": {"wall_s": 50.0, "cpu_s": 25.0, "peak_rss_gb": 4.883},
    }
    write_scaling(table, tmp_path / "scaling.json", tmp_path / "scaling.csv")
    assert read_json(tmp_path / "scaling.json")["sizes"] == table["sizes"]
    rows = list(csv.DictReader((tmp_path / "scaling.csv").open()))
    assert [int(r["events"]) for r in rows] == table["sizes"]
    assert rows[0]["prepare_s"] == "1.0" and rows[2]["train_s"] == ""
    text = markdown(table)
    assert (
        "| prepare | 1 s (0 s CPU), 0.10 GB | 5 s (2 s CPU), 0.49 GB | 25 s (12 s CPU), 2.44 GB | 1.00 | 1.00 | 1.00 |"
        in text
    )
    assert "| train | 10 s (5 s CPU), 0.98 GB | 50 s (25 s CPU), 4.88 GB | – | 1.00 | 1.00 | 1.00 |" in text
    assert list(scaling_table(runs, order=["train", "prepare"])["stages"]) == ["synth", "train", "prepare", TOTAL]
    with pytest.raises(DataError, match="without measurements"):
        scaling_table([{"status": "failed", "stages": {}}])


def test_pipeline_order_runs_every_stage_after_the_ones_it_reads() -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    order = pipeline_order(dvc)
    assert sorted(order) == sorted(dvc["stages"])
    position = {name: i for i, name in enumerate(order)}
    assert order[0] == "fetch" and position["register"] > position["bundle"] > position["build_index"]
    assert position["evaluate"] > max(position["train_ranking"], position["build_index"])  # reads reports/index.json
    cyclic = {"stages": {"a": {"deps": ["x"], "outs": ["y"]}, "b": {"deps": ["y"], "outs": ["x"]}}}
    with pytest.raises(DataError, match="cycle"):
        pipeline_order(cyclic)


def test_a_measured_command_reports_its_peak_memory_and_time(tmp_path: Path) -> None:
    code = "import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(3)"
    ballast = bytearray(800 * 1024 * 1024)  # this process is large, as pytest with TensorFlow loaded is
    ballast[::4096] = b"x" * len(ballast[::4096])
    result = measured([sys.executable, "-c", code], tmp_path, {}, tmp_path / "log.txt", interval=0.05)
    del ballast
    assert result.returncode == 0 and result.wall_s >= 3
    assert 300 <= result.peak_rss_mb < 600  # the kernel's figure, the command's own, not this process's
    assert 300 <= result.peak_tree_rss_mb < 600  # sampled while it holds the memory for 3 s
    failed = measured(
        [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path, {}, tmp_path / "f.txt"
    )
    assert failed.returncode == 3 and "boom" in (tmp_path / "f.txt").read_text()


def test_run_sizes_follow_ml_25m_and_leave_room_in_the_catalogue() -> None:
    assert ScaleRun(25_000_000, Path("w")).sizes() == (160_000, 60_000)
    assert ScaleRun(1_000_000, Path("w")).sizes() == (6_400, 2_400)
    users, items = ScaleRun(50_000, Path("w")).sizes()
    assert users == 320 and items >= 4 * 50_000 / users
    assert ScaleRun(50_000, Path("w"), users=100, items=3000).sizes() == (100, 3000)


def test_a_real_dataset_is_a_column_of_its_own_outside_the_fits() -> None:
    real = _run(100_836, {"prepare": 2.0, "train": 8.0})
    real["dataset"] = {"source": "ml-100k", "synthetic": False}
    table = scaling_table([_run(1_000_000, {"prepare": 1.0, "train": 10.0}), real, _run(5_000_000, {"prepare": 5.0})])
    assert table["sizes"] == [1_000_000, 5_000_000]  # the real run is not a size
    assert table["stages"]["prepare"]["time_exponent"] == pytest.approx(1.0, abs=1e-3)
    (reference,) = table["references"]
    assert reference["source"] == "ml-100k"
    assert reference["stages"]["train"] == {"wall_s": 8.0, "cpu_s": 4.0, "peak_rss_gb": 0.781}
    assert reference["stages"][TOTAL] == {"wall_s": 10.0, "cpu_s": 5.0, "peak_rss_gb": 0.781}
    lines = markdown(table).splitlines()
    assert lines[0].startswith("| stage | ml-100k (real) | 1M events | 5M events | time exp. | CPU exp. |")
    assert (
        "| prepare | 2 s (1 s CPU), 0.20 GB | 1 s (0 s CPU), 0.10 GB | 5 s (2 s CPU), 0.49 GB | 1.00 | 1.00 | 1.00 |"
        in lines
    )

"""`movierec scale run` end to end: every dvc.yaml stage on a small synthetic dataset in a
folder of its own, each measured; then `movierec scale table` with a second, larger run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from movierec.cli import main
from movierec.scaling.runner import ScaleRun, run_scale

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_a_small_run_measures_every_stage_and_the_table_fits_exponents(tmp_path: Path) -> None:
    record = run_scale(ScaleRun(events=20_000, work=tmp_path / "small", worktree=True), ROOT)
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert record["status"] == "complete", record.get("log_tail")
    assert set(record["stages"]) == {"synth", *stages}
    for name, stage in record["stages"].items():
        assert stage["returncode"] == 0, name
        assert stage["wall_s"] > 0 and stage["peak_rss_mb"] > 0 and stage["peak_tree_rss_mb"] > 0, name
    assert record["stages"]["train_retrieval"]["peak_rss_mb"] > 200  # TensorFlow was loaded and measured
    assert record["up_to_date"], record["dvc_status"]  # as after a plain `dvc repro`
    assert record["dataset"]["synthetic"] and abs(record["dataset"]["ratings"] - 20_000) < 1_000
    assert record["pipeline_wall_s"] == pytest.approx(
        sum(v["wall_s"] for k, v in record["stages"].items() if k != "synth"), abs=0.1
    )
    metrics = json.loads((tmp_path / "small" / "repo" / "reports" / "metrics.json").read_text())
    assert metrics["systems"]["chain"]["all"]["recall@100"] > 0
    assert (tmp_path / "small" / "dataset" / "ratings.csv").exists()  # nothing written into the project

    # a second size for the data stages only, then the table from both runs
    larger = run_scale(
        ScaleRun(events=60_000, work=tmp_path / "larger", worktree=True, stages=("fetch", "prepare", "split")), ROOT
    )
    assert larger["status"] == "complete" and set(larger["stages"]) == {"synth", "fetch", "prepare", "split"}
    out, plot = tmp_path / "scaling.json", tmp_path / "scaling.csv"
    runs = [str(tmp_path / "small" / "scale.json"), str(tmp_path / "larger" / "scale.json")]
    assert main(["scale", "table", *runs, "--out", str(out), "--csv", str(plot)]) == 0
    table = json.loads(out.read_text())
    assert table["sizes"][0] < table["sizes"][1]
    for name in ("synth", "prepare", "split"):
        assert isinstance(table["stages"][name]["time_exponent"], float), name
    assert table["stages"]["train_retrieval"]["time_exponent"] is None  # measured at one size only
    assert table["stages"]["pipeline"]["wall_s"][1] is None  # a run of some stages has no total
    assert plot.read_text().splitlines()[0].startswith("events,")

"""The in-process request-cost tool runs every scenario against a real bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_fixture import TinyProject

from movierec.serving.bench_inprocess import SCENARIOS


@pytest.mark.integration
def test_every_scenario_is_measured_on_a_real_bundle(tiny_project: TinyProject, tmp_path: Path) -> None:
    out = tmp_path / "costs.json"
    done = subprocess.run(
        [sys.executable, "-m", "movierec.serving.bench_inprocess", "--bundle", str(tiny_project.checkpoints)]
        + ["--requests", "40", "--warmup", "20", "--json", str(out), "--profile", str(tmp_path / "prof")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    costs = json.loads(out.read_text())
    assert sorted(costs) == sorted(SCENARIOS)
    for name, cost in costs.items():
        assert 0 < cost["wall_us"] < 1e6 and 0 < cost["cpu_us"] < 1e6, (name, cost)
        assert name in done.stdout
        assert (tmp_path / "prof" / f"{name}.prof").stat().st_size > 0
    # a reply computed anew does the model work a kept one skips
    assert costs["chain-fresh"]["cpu_us"] > costs["chain"]["cpu_us"]


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "movierec.serving.bench_inprocess", "--bundle", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "not a bundle folder (no manifest.json)" in done.stderr

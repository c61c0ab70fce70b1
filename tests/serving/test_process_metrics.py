"""Process metrics in multiprocess mode: one sample per live worker, labelled by pid; dead workers leave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bundle_fixture import metric_samples

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for uvicorn's supervisor: it starts three "workers" that import the metrics
# module; one exits at once (a crashed worker), one stays alive, one renders /metrics.
SUPERVISOR = textwrap.dedent(
    """
    import json, subprocess, sys
    worker = "from movierec.serving import metrics; import sys, time; {}"
    dead = subprocess.run([sys.executable, "-c", worker.format("pass")], check=True)
    alive = subprocess.Popen([sys.executable, "-c", worker.format("print(1, flush=True); time.sleep(60)")],
                             stdout=subprocess.PIPE)
    alive.stdout.readline()  # it has imported the metrics and written its files
    render = "from movierec.serving.metrics import render; import os; print(os.getpid()); print(render().decode())"
    out = subprocess.run([sys.executable, "-c", render], check=True, capture_output=True, text=True).stdout
    alive.kill()
    print(json.dumps({"alive": alive.pid, "text": out}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads procfs")
def test_every_live_worker_has_its_process_metrics_and_a_dead_one_has_none(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    out = json.loads(
        subprocess.run([sys.executable, "-c", SUPERVISOR], check=True, env=env, capture_output=True).stdout
    )
    renderer, text = out["text"].split("\n", 1)
    pids = {str(out["alive"]), renderer}
    on_disk = {p.stem.rsplit("_", 1)[-1] for p in tmp_path.glob("*.db")}
    assert len(on_disk - pids) == 1, on_disk  # the dead worker's files are there ...
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        samples = metric_samples(text, name)
        assert {labels["pid"] for labels, _ in samples} == pids, (name, samples)  # ... but not in the metrics
        assert all(value > 0 for _, value in samples), (name, samples)

"""The launcher with real worker processes (small Python programs, no TensorFlow): TF_CONFIG per
worker, prefixed logs, and a failing or killed worker that stops the others and is named."""

from __future__ import annotations

import io
import os
import re
import sys
import time
import types
from pathlib import Path

import pytest

from movierec.orchestration import launcher
from movierec.orchestration.cluster import loopback_cluster
from movierec.orchestration.launcher import WorkerFailed, launch

REPORT = (
    "import json, os, sys\n"
    "config = json.loads(os.environ['TF_CONFIG'])\n"
    "print('index', config['task']['index'], 'of', len(config['cluster']['worker']))\n"
    "print('progress bars', os.environ.get('TQDM_DISABLE', 'on'))\n"
    "sys.stderr.write('step 1\\rstep 2\\n')\n"
)


def _program(body: str, folder: Path | None = None) -> list[str]:
    """A worker running ``body``; with ``folder``, ``ready()`` marks this worker started and
    ``all_ready(n)`` waits until n workers are (so a test's failure never races a start-up)."""
    head = "import json, os, signal, sys, time\nindex = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
    if folder is not None:
        head += (
            f"folder = {str(folder)!r}\n"
            "def ready():\n"
            "    open(os.path.join(folder, f'ready-{index}'), 'w').close()\n"
            "def all_ready(n):\n"
            "    deadline = time.time() + 60\n"
            "    while len(os.listdir(folder)) < n and time.time() < deadline:\n"
            "        time.sleep(0.05)\n"
        )
    return [sys.executable, "-c", head + body]


def test_every_worker_gets_its_tf_config_and_a_prefixed_log() -> None:
    log = io.StringIO()
    addresses = loopback_cluster(3)
    assert launch([sys.executable, "-c", REPORT], addresses, log=log) == [0, 1, 2]
    lines = log.getvalue().splitlines()
    for index in range(3):
        assert f"[worker {index}] index {index} of 3" in lines
    assert "[worker 0] progress bars on" in lines  # the chief's progress is shown
    assert "[worker 2] progress bars 1" in lines  # the others' is not
    assert "[worker 1] step 1" in lines and "[worker 1] step 2" in lines  # a carriage return ends a line


def test_only_the_local_workers_start_on_a_host_of_several() -> None:
    log = io.StringIO()
    assert launch([sys.executable, "-c", REPORT], ["a:1", "b:1", "c:1"], local=[1], log=log) == [1]
    assert "[worker 1] index 1 of 3" in log.getvalue()
    assert "[worker 0]" not in log.getvalue() and "[worker 2]" not in log.getvalue()


def _pid_of(log: io.StringIO, index: int) -> int:
    found = re.search(rf"\[worker {index}\] pid (\d+)", log.getvalue())
    assert found, log.getvalue()
    return int(found.group(1))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_failing_worker_is_named_with_its_last_lines_and_the_others_are_stopped(tmp_path: Path) -> None:
    body = (
        "print('pid', os.getpid(), flush=True)\n"
        "ready()\n"
        "if index == 1:\n"
        "    all_ready(2)\n"
        "    print('loading data', flush=True)\n"
        "    print('error: the data are bad', file=sys.stderr, flush=True)\n"
        "    sys.exit(3)\n"
        "time.sleep(120)\n"
    )
    log = io.StringIO()
    start = time.monotonic()
    with pytest.raises(WorkerFailed) as caught:
        launch(_program(body, tmp_path), loopback_cluster(2), log=log)
    assert time.monotonic() - start < 60  # not the 120 s the chief would have waited
    error = caught.value
    assert error.index == 1 and "exited with status 3" in str(error)
    assert error.address in str(error) and "worker 1" in str(error)
    assert error.tail[-2:] == ["loading data", "error: the data are bad"]
    assert _gone(_pid_of(log, 0))


def test_a_killed_worker_is_reported_as_killed(tmp_path: Path) -> None:
    body = (
        "print('pid', os.getpid(), flush=True)\n"
        "ready()\n"
        "if index == 0:\n"
        "    all_ready(2)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "time.sleep(120)\n"
    )
    log = io.StringIO()
    with pytest.raises(WorkerFailed, match="worker 0 .* was killed by SIGKILL"):
        launch(_program(body, tmp_path), loopback_cluster(2), log=log)
    assert _gone(_pid_of(log, 1))


def test_a_worker_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(launcher, "STOP_GRACE_S", 0.5)
    body = (
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('pid', os.getpid(), flush=True)\n"
        "ready()\n"
        "if index == 1:\n"
        "    all_ready(2)\n"
        "    sys.exit(1)\n"
        "time.sleep(120)\n"
    )
    log = io.StringIO()
    with pytest.raises(WorkerFailed, match="worker 1"):
        launch(_program(body, tmp_path), loopback_cluster(2), log=log)
    assert _gone(_pid_of(log, 0))


def test_an_interrupted_launcher_leaves_no_worker_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or any error) in the launcher while it waits stops every worker it started."""
    log = io.StringIO()

    def sleep(seconds: float) -> None:
        if "pid" in log.getvalue():
            raise KeyboardInterrupt
        time.sleep(seconds)

    monkeypatch.setattr(launcher, "time", types.SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    body = "print('pid', os.getpid(), flush=True)\ntime.sleep(120)\n"
    with pytest.raises(KeyboardInterrupt):
        launch(_program(body), loopback_cluster(1), log=log, poll_s=0.05)
    assert _gone(_pid_of(log, 0))

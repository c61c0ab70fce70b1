"""Runs the ``wrk`` load generator on one scenario and reads what it measured, and its own CPU use."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from movierec.errors import MovierecError

SCRIPT = Path(__file__).resolve().parent / "wrk" / "bench.lua"
MARKER = "MOVIEREC_WRK "
INSTALL_HINT = "install it with `apt-get install wrk` (Debian/Ubuntu) or `make system-deps`"
GRACE_SECONDS = 15.0  # past duration + timeout, wrk is killed: a run never outlives its bound


class BenchError(MovierecError):
    """The load cannot be generated or measured: wrk missing or failing, the server down or not ready."""


@dataclass(frozen=True)
class Load:
    """How hard wrk drives one scenario: threads, open connections, seconds, per-request timeout."""

    threads: int = 1
    connections: int = 16
    seconds: int = 10
    timeout: int = 5


def find_wrk() -> str:
    """The path of the ``wrk`` executable.

    Raises:
        BenchError: wrk is not on ``PATH``, with how to install it.
    """
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            f"wrk is not installed (no `wrk` on PATH); the benchmark's load generator is wrk: {INSTALL_HINT}"
        )
    if not SCRIPT.is_file():
        raise BenchError(f"the wrk script {SCRIPT} is missing from the installed package; reinstall movierec")
    return path


def wrk_version(wrk: str) -> str | None:
    """wrk's own version line (``wrk -v`` prints it, then its usage, and exits 1)."""
    try:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else None


def machine_cpu_times() -> tuple[float, float] | None:
    """``(busy, total)`` CPU jiffies of the whole machine from ``/proc/stat`` (None elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [float(v) for v in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _wait(process: subprocess.Popen, deadline: float) -> tuple[int, Any, bool]:
    """Reap ``process`` with its resource usage; kill it once ``deadline`` has passed."""
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() >= deadline and not killed:
            os.kill(process.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return process.returncode, usage, killed


def run_wrk(wrk: str, url: str, requests_file: Path, load: Load) -> dict[str, Any]:
    """Drive ``url`` with the requests in ``requests_file`` for ``load.seconds``.

    Args:
        wrk: the wrk executable (:func:`find_wrk`).
        url: the server's base URL (the requests carry their own paths).
        requests_file: the scenario's requests, as :meth:`Scenario.write` writes them.
        load: threads, connections, seconds and per-request timeout.

    Returns:
        What ``bench.lua`` printed (requests, duration, socket errors, latency percentiles in
        microseconds, counts by status), plus ``wrk_cpu_seconds`` (user + system time of
        the wrk process), ``wrk_wall_seconds`` and ``machine_cpu`` (the share of all the
        machine's cores busy meanwhile, or None).

    Raises:
        BenchError: wrk failed, was killed at its time bound, or printed no results.
    """
    command = [
        wrk,
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={load.seconds}s",
        f"--timeout={load.timeout}s",
        f"--script={SCRIPT}",
        url,
        "--",
        str(requests_file),
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpu0 = machine_cpu_times()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        code, usage, killed = _wait(process, started + load.seconds + load.timeout + GRACE_SECONDS)
        wall = time.perf_counter() - started
        cpu1 = machine_cpu_times()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if killed:
        raise BenchError(f"wrk did not finish within {load.seconds + load.timeout + GRACE_SECONDS:g} s and was stopped")
    result = parse_output(stdout, stderr, code)
    result["wrk_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["wrk_wall_seconds"] = wall
    busy = None
    if cpu0 and cpu1 and cpu1[1] > cpu0[1]:
        busy = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
    result["machine_cpu"] = busy
    return result


def parse_output(stdout: str, stderr: str = "", returncode: int = 0) -> dict[str, Any]:
    """The JSON that ``bench.lua``'s ``done()`` printed after :data:`MARKER` (the last such line).

    Raises:
        BenchError: no such line (wrk failed before the end), with what wrk said.
    """
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        said = " ".join((stderr.strip() or stdout.strip() or "nothing").split())[-500:]
        raise BenchError(f"wrk exited with status {returncode} and reported no results; it said: {said}")
    try:
        result = json.loads(lines[-1][len(MARKER) :])
    except ValueError as exc:
        raise BenchError(f"wrk's results line is not valid JSON ({exc}): {lines[-1][:200]}") from None
    result["statuses"] = {int(code): int(n) for code, n in result.get("statuses", {}).items()}
    return result

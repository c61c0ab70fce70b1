"""One command's wall time and peak memory: the kernel's figure for its largest process, and
the sum over its whole process tree sampled while it runs."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1024 * 1024
WAITER = Path(__file__).with_name("waiter.py")


@dataclass(frozen=True)
class Measurement:
    """What one command cost.

    Attributes:
        wall_s: wall-clock seconds from start to exit.
        peak_rss_mb: the largest resident set of any single process of the command (the
            kernel's ``ru_maxrss`` of the process and its descendants, what ``/usr/bin/time -v``
            reports as "Maximum resident set size").
        peak_tree_rss_mb: the largest sum of resident sets over the whole process tree at
            once, sampled every ``interval`` seconds (may miss a peak shorter than that).
        user_s: CPU seconds in user mode, the command and its descendants together.
        system_s: CPU seconds in the kernel, likewise.
        returncode: the command's exit status.
    """

    wall_s: float
    peak_rss_mb: float
    peak_tree_rss_mb: float
    user_s: float
    system_s: float
    returncode: int

    def as_dict(self) -> dict[str, float | int]:
        """The figures rounded for a report."""
        return {
            "wall_s": round(self.wall_s, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_tree_rss_mb": round(self.peak_tree_rss_mb, 1),
            "user_s": round(self.user_s, 2),
            "system_s": round(self.system_s, 2),
            "returncode": self.returncode,
        }


def measured(command: list[str], cwd: Path, env: dict[str, str], log: Path, interval: float = 0.5) -> Measurement:
    """Run ``command`` to its end with its output appended to ``log``, and measure it.

    Args:
        command: the program and its arguments.
        cwd: where it runs.
        env: its environment.
        log: the file its stdout and stderr go to (appended).
        interval: seconds between samples of the process tree's memory.

    Returns:
        The measurement (a failed command is measured too: see ``returncode``).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="movierec-measure-") as scratch:
        report = Path(scratch) / "usage.json"
        # the command runs under a small waiter: forked straight from this (possibly large)
        # process, its ru_maxrss would start at this process's resident set (see waiter.py)
        wrapped = [sys.executable, "-S", str(WAITER), str(report), *command]
        start = time.perf_counter()
        with log.open("ab") as out:
            process = subprocess.Popen(wrapped, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
            done = threading.Event()
            peak = [0]
            sampler = threading.Thread(target=_sample_tree, args=(process.pid, done, peak, interval), daemon=True)
            sampler.start()
            returncode = process.wait()
            wall = time.perf_counter() - start
            done.set()
            sampler.join()
        if not report.exists():
            raise RuntimeError(f"the measuring waiter failed before running {command[0]!r}; see {log}")
        usage = json.loads(report.read_text())
    return Measurement(
        wall_s=wall,
        peak_rss_mb=usage["maxrss_kb"] * 1024 / MB,  # kilobytes on Linux
        peak_tree_rss_mb=peak[0] / MB,
        user_s=usage["user_s"],
        system_s=usage["system_s"],
        returncode=returncode,
    )


def _sample_tree(pid: int, done: threading.Event, peak: list[int], interval: float) -> None:
    """Keep ``peak[0]`` at the largest total resident memory of ``pid`` and its descendants."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not done.is_set():
        total = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return
        peak[0] = max(peak[0], total)
        done.wait(interval)

"""Process metrics of every live worker, labelled by pid, for multiprocess mode.

prometheus-client's process collector describes only the process it runs in, and its
multiprocess mode has none at all: with several workers ``/metrics`` had no
``process_*`` family. At scrape time the worker answering reads ``/proc/<pid>`` of each
worker that shares the metrics folder (the same files prometheus-client's collector
reads for its own process), so every family comes once per worker with a ``pid`` label:
``process_resident_memory_bytes``, ``process_virtual_memory_bytes``,
``process_cpu_seconds_total``, ``process_open_fds``, ``process_max_fds`` and
``process_start_time_seconds``. Nothing runs on the request path.

A worker is found by the files prometheus-client writes per pid in the metrics folder;
a pid is reported only while it runs and is this worker or a sibling (same parent, the
uvicorn supervisor), so a dead worker, or an unrelated process that later reuses its
pid, is never shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PROC = Path("/proc")


def _parent_of(pid: int, proc: Path = PROC) -> int | None:
    """The parent pid of ``pid`` from ``/proc/<pid>/stat``, or None when it cannot be read."""
    try:
        stat = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[-1].split()  # after the command name, which may hold spaces
    return int(fields[1]) if len(fields) > 1 else None


def worker_pids(directory: str | Path, proc: Path = PROC) -> list[int]:
    """Pids of the live workers writing to the multiprocess folder ``directory``, this one included."""
    me = os.getpid()
    parent = os.getppid()
    named = set()
    for path in Path(directory).glob("*_*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            named.add(int(tail))
    found = {me}
    for pid in named - {me}:
        if _parent_of(pid, proc) == parent:
            found.add(pid)
    return sorted(found)


class WorkerProcessCollector(Collector):
    """Collects the ``process_*`` families of each live worker, with a ``pid`` label.

    Args:
        directory: the ``PROMETHEUS_MULTIPROC_DIR`` the workers share.
        proc: where procfs is mounted (tests point it elsewhere).
    """

    def __init__(self, directory: str | Path, proc: Path = PROC):
        self.directory = Path(directory)
        self.proc = proc

    def collect(self) -> Iterable[Metric]:
        """One family per process metric, one sample per worker (nothing where procfs is absent)."""
        families: dict[str, Metric] = {}
        for pid in worker_pids(self.directory, self.proc):
            one = ProcessCollector(pid=lambda pid=pid: pid, proc=str(self.proc), registry=None)
            for metric in one.collect():
                family = families.setdefault(metric.name, Metric(metric.name, metric.documentation, metric.type))
                for sample in metric.samples:
                    family.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())

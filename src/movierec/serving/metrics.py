"""Prometheus metrics of the service; correct with several workers (multiprocess mode).

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before starting the workers (the
``movierec serve`` command does) and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("recommendation_requests_total", "Requests by endpoint and HTTP status", ["endpoint", "status"])
LATENCY = Histogram(
    "recommendation_latency_seconds",
    "Latency by endpoint and stage (stage=total for the whole "
    "request; retrieval, filter, ranking for the chain's parts)",
    ["endpoint", "stage"],
    buckets=BUCKETS,
)
MODEL_LOAD = Gauge("model_load_time_seconds", "Seconds the current bundle took to load", multiprocess_mode="max")
ACTIVE_USERS = Gauge(
    "active_users_count", "Distinct users seen in the last 5 minutes (summed over workers)", multiprocess_mode="livesum"
)
FALLBACKS = Counter("fallback_total", "Requests answered by a fallback, by reason", ["reason"])
LOG_DROPPED = Counter("request_log_dropped_total", "Request-log rows dropped because the log writer's queue was full")
BUNDLE = Gauge(
    "model_bundle_info", "The loaded bundle version (value 1 for the current one)", ["version"], multiprocess_mode="max"
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ActiveUsers:
    """Distinct user ids seen in a sliding window, kept small (bounded dict)."""

    def __init__(self, window: float = 300.0, limit: int = 100_000):
        self.window = window
        self.limit = limit
        self.seen: OrderedDict[int, float] = OrderedDict()
        self._lock = threading.Lock()  # routes run in a thread pool

    def touch(self, user_id: int | None) -> None:
        """Record a request of ``user_id`` and update the gauge."""
        now = time.time()
        with self._lock:
            if user_id is not None:
                self.seen.pop(user_id, None)
                self.seen[user_id] = now
            while self.seen and (next(iter(self.seen.values())) < now - self.window or len(self.seen) > self.limit):
                self.seen.popitem(last=False)
            count = len(self.seen)
        ACTIVE_USERS.set(count)


def set_bundle(version: str, load_seconds: float, previous: str | None = None) -> None:
    """Publish the loaded bundle's version and load time."""
    if previous and previous != version:
        BUNDLE.labels(version=previous).set(0)
    BUNDLE.labels(version=version).set(1)
    MODEL_LOAD.set(load_seconds)


def forget_dead_workers(directory: str | None = None) -> list[int]:
    """Drop the live-gauge files of worker processes that no longer run; returns their pids.

    In multiprocess mode each worker writes its gauges to files named by its pid, and a
    ``livesum`` gauge such as ``active_users_count`` only leaves out a dead worker once its
    files are marked dead. A worker that crashed (and was replaced by the supervisor) never
    did that itself, so its last value stayed in the total; this runs before each scrape.
    """
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    dead = set()
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[-1]) if path.stem.rsplit("_", 1)[-1].isdigit() else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:  # alive, owned by another user
            pass
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)
    return sorted(dead)


def render() -> bytes:
    """The exposition text, aggregated over workers in multiprocess mode."""
    if MULTIPROCESS:
        forget_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()

"""Prometheus metrics of the service; correct with several workers (multiprocess mode).

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before starting the workers (the
``movierec serve`` command does) and ``/metrics`` aggregates every worker's values. Gauges
of the current state use "live" modes, so a worker that died leaves the totals at the next
scrape (:func:`forget_dead_workers`); each live worker's process metrics are read from
``/proc`` at scrape time (:mod:`movierec.serving.process_metrics`). The windowed quality
gauges are computed off the request path (:mod:`movierec.serving.quality`).
"""

from __future__ import annotations

import functools
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
# from 0.1 ms: a chain request's stages take a few tenths of a millisecond, which buckets
# starting at 1 ms could only place somewhere under 1 ms
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("recommendation_requests_total", "Requests by endpoint and HTTP status", ["endpoint", "status"])
LATENCY = Histogram(
    "recommendation_latency_seconds",
    "Latency by endpoint and stage (stage=total for the whole "
    "request; retrieval, filter, ranking for the chain's parts)",
    ["endpoint", "stage"],
    buckets=BUCKETS,
)
MODEL_LOAD = Gauge("model_load_time_seconds", "Seconds the current bundle took to load", multiprocess_mode="livemax")
ACTIVE_USERS = Gauge(
    "active_users_count", "Distinct users seen in the last 5 minutes (summed over workers)", multiprocess_mode="livesum"
)
FALLBACKS = Counter("fallback_total", "Requests answered by a fallback, by reason", ["reason"])
LOG_DROPPED = Counter("request_log_dropped_total", "Request-log rows dropped because the log writer's queue was full")


@functools.cache
def labelled(metric: Counter | Histogram | Gauge, *values: str) -> Counter | Histogram | Gauge:
    """``metric.labels(*values)``, remembered: the per-request metrics name few label sets,
    and looking a child up anew validates and locks on every request."""
    return metric.labels(*values)


BUNDLE = Gauge(
    "model_bundle_info",
    "The loaded bundle version (value 1 for the current one)",
    ["version"],
    multiprocess_mode="livemax",
)
OFFLINE_NDCG = Gauge(
    "model_offline_ndcg_at_10",
    "Chain NDCG@10 of the served bundle on its test users (the manifest's metrics.test.chain)",
    multiprocess_mode="livemax",
)
FEEDBACK_EVENTS = Counter("feedback_events_total", "Feedback events stored, by event type", ["event"])
# Every labelled series the service can count exists at 0 from a worker's start, so rate() and
# increase() see its first events too (a series that appears already at 1 has no increase)
FEEDBACK_TYPES = ("rating", "view", "click", "watch")  # schemas.FeedbackRequest.event
FALLBACK_REASONS = ("unknown_user_no_history", "no_history")  # service.Recommender.retrieve
for _event in FEEDBACK_TYPES:
    FEEDBACK_EVENTS.labels(event=_event)
for _reason in FALLBACK_REASONS:
    FALLBACKS.labels(reason=_reason)
# The quality gauges below are set by the one worker that computes them (serving/quality.py);
# "livemostrecent" shows its value, and drops it when that worker dies.
SERVED_PAIRS = Gauge(
    "recommendation_served_pairs",
    "Distinct (user, item) pairs the chain recommended within the quality window",
    multiprocess_mode="livemostrecent",
)
INTERACTED_PAIRS = Gauge(
    "recommendation_interacted_pairs",
    "Of recommendation_served_pairs, those the user sent feedback on after the item was recommended",
    multiprocess_mode="livemostrecent",
)
INTERACTED_RATIO = Gauge(
    "recommendation_interacted_ratio",
    "recommendation_interacted_pairs / recommendation_served_pairs (NaN with nothing served in the window)",
    multiprocess_mode="livemostrecent",
)
COVERAGE = Gauge(
    "catalogue_coverage_ratio",
    "Share of the served bundle's catalogue that an endpoint returned within the quality window",
    ["endpoint"],
    multiprocess_mode="livemostrecent",
)
QUALITY_WINDOW = Gauge(
    "quality_window_seconds", "Length of the quality gauges' window", multiprocess_mode="livemostrecent"
)
QUALITY_UPDATED = Gauge(
    "quality_updated_timestamp_seconds",
    "Unix time the quality gauges were last computed",
    multiprocess_mode="livemostrecent",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ActiveUsers:
    """Distinct user ids seen in a sliding window, kept small (bounded dict)."""

    def __init__(self, window: float = 300.0, limit: int = 100_000):
        self.window = window
        self.limit = limit
        self.seen: OrderedDict[int, float] = OrderedDict()
        self.count = -1  # the count last published
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
            if count != self.count:  # a write to the shared metric file only when the count moved
                self.count = count
                ACTIVE_USERS.set(count)


def offline_ndcg(manifest: dict | None) -> float:
    """The chain's NDCG@10 recorded in a bundle manifest (``metrics.test.chain``), NaN when absent."""
    found = ((manifest or {}).get("metrics", {}).get("test", {}).get("chain") or {}).get("ndcg@10")
    return float(found) if found is not None else float("nan")


def set_bundle(version: str, load_seconds: float, previous: str | None = None, manifest: dict | None = None) -> None:
    """Publish the loaded bundle's version, load time and offline chain NDCG@10 (from ``manifest``)."""
    if previous and previous != version:
        BUNDLE.labels(version=previous).set(0)
    BUNDLE.labels(version=version).set(1)
    MODEL_LOAD.set(load_seconds)
    OFFLINE_NDCG.set(offline_ndcg(manifest))


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
    """The exposition text, aggregated over workers in multiprocess mode (with each live
    worker's process metrics, labelled by pid)."""
    if MULTIPROCESS:
        from movierec.serving.process_metrics import WorkerProcessCollector

        forget_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(WorkerProcessCollector(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        return generate_latest(registry)
    return generate_latest()

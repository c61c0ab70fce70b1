"""The asynchronous request log: one row per served request, written by a background thread.

A request puts its row on a bounded in-memory queue and returns; a writer thread stores
rows in small transactions. When the writer falls behind and the queue is full, the
request served in the thread pool waits up to ``request_log_block_seconds`` for room
(back-pressure: the service slows down a little instead of losing rows at once; a request
served on the event loop never waits, since that would stall every request of the
worker); a row that still finds no room, or
that the database refuses after retries, is dropped and counted in
``request_log_dropped_total`` and the log, never lost silently.

Retention: the writer deletes rows older than ``request_log_max_age_days`` and keeps at
most ``request_log_max_rows`` rows (the newest), checking every
``request_log_prune_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from movierec.serving.database import StoreUnavailable
from movierec.serving.metrics import LOG_DROPPED
from movierec.serving.settings import Settings
from movierec.serving.storage import Storage, open_storage

log = logging.getLogger("movierec.serving")
BATCH = 500  # rows per transaction
WRITE_ATTEMPTS = 5
LINGER_SECONDS = 0.2  # how long the writer waits to fill a batch once it has a row
LINGER_POLL_SECONDS = 0.01  # how often it looks at the queue meanwhile


def _on_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop (an ``async def`` route)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def log_lists(item_ids: Sequence[int], scores: Sequence[float]) -> tuple[str, str]:
    """The request log's two JSON columns for a result: the item ids, and the scores to 6 decimals."""
    rounded = np.round(np.asarray(scores, dtype=np.float64), 6)
    return json.dumps([int(i) for i in item_ids]), json.dumps(rounded.tolist())


class RequestLog:
    """Writes request rows from a queue on a background thread, in small transactions.

    Args:
        where: the service's storage (:mod:`~movierec.serving.storage`), or a SQLite path or
            PostgreSQL URL to open one (then closed with this log). With SQLite the rows go to
            the request log's own file beside the database
            (:func:`~movierec.serving.database.log_file_of`).
        max_queue: rows the queue holds (default: the ``log_queue_size`` setting).
        settings: the service settings (default: from the environment).
    """

    def __init__(self, where: Storage | Path | str, max_queue: int | None = None, settings: Settings | None = None):
        settings = settings or Settings()
        if isinstance(where, (Path, str)):
            self.storage, self._owns = open_storage(settings, location=where), True
        else:
            self.storage, self._owns = where, False
        self.queue: queue.Queue[tuple | None] = queue.Queue(maxsize=max_queue or settings.log_queue_size)
        self.block_seconds = settings.request_log_block_seconds
        self.max_age_seconds = settings.request_log_max_age_days * 86400.0
        self.max_rows = settings.request_log_max_rows
        self.prune_seconds = settings.request_log_prune_seconds
        self.dropped = 0
        self._dropped_lock = threading.Lock()
        self._last_prune = 0.0
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def log(
        self,
        request_id: str,
        user_id: int | None,
        endpoint: str,
        model_version: str | None,
        item_ids: list[int],
        scores: list[float],
        latency_ms: float,
        is_fallback: bool,
        fallback_reason: str | None,
        logged: tuple[str, str] | None = None,
    ) -> None:
        """Queue one row; waits at most ``request_log_block_seconds`` for room, else drops it (counted).

        ``logged`` is the row's two JSON columns already encoded by :func:`log_lists` (a reply
        served again from the reply cache carries them), in place of ``item_ids`` and ``scores``.
        """
        items_json, scores_json = logged or log_lists(item_ids, scores)
        row = (
            request_id,
            time.time(),
            user_id,
            endpoint,
            model_version,
            items_json,
            scores_json,
            latency_ms,
            int(is_fallback),
            fallback_reason,
        )
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            if _on_event_loop():  # an async route: waiting here would stall every request of the worker
                self._drop(1, f"the writer's queue is full ({self.queue.maxsize} rows)")
                return
            try:
                self.queue.put(row, timeout=self.block_seconds)
            except queue.Full:
                self._drop(1, f"the writer's queue is full ({self.queue.maxsize} rows)")

    def _drop(self, n: int, why: str) -> None:
        with self._dropped_lock:
            before = self.dropped
            self.dropped += n
            total = self.dropped
        LOG_DROPPED.inc(n)  # nothing lost silently: exported, and logged (first, then every 1000th)
        if before // 1000 != total // 1000 or before == 0:
            log.warning("request log: %d rows dropped (%s); %d dropped so far", n, why, total)

    def _run(self) -> None:
        while True:
            try:
                row = self.queue.get(timeout=self.prune_seconds)
            except queue.Empty:
                self._maybe_prune()
                continue
            if row is None:
                self.queue.task_done()
                return
            batch = [row]
            done = False
            # linger a little so a busy service writes a few large transactions rather than
            # one per request (each commit costs far more than a row: measured 16 % of a
            # worker's CPU under the chain's load before). The writer sleeps, then takes what
            # arrived: waiting on the queue instead woke this thread for every row put, a
            # thread switch per request that cost about a fifth of a cached reply's time.
            # It stops lingering once a batch is waiting, or half the queue, so a small queue
            # never fills while the writer sleeps.
            deadline = time.monotonic() + LINGER_SECONDS
            enough = min(BATCH, self.queue.maxsize // 2) - 1
            while self.queue.qsize() < enough and time.monotonic() < deadline:
                time.sleep(LINGER_POLL_SECONDS)
            while len(batch) < BATCH:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                    break
                batch.append(nxt)
            self._write(batch)
            for _ in range(len(batch) + done):
                self.queue.task_done()  # flush() waits for these
            self._maybe_prune()
            if done:
                return

    def _write(self, rows: list[tuple]) -> None:
        reason = ""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self.storage.write_logs(rows)
                return
            except StoreUnavailable as exc:
                reason = exc.reason
                time.sleep(0.05 * (attempt + 1))
        self._drop(len(rows), f"the database refused them: {reason}")

    def prune(self, now: float | None = None) -> int:
        """Delete rows past the retention limits; returns how many were deleted."""
        cutoff = (now if now is not None else time.time()) - self.max_age_seconds
        return self.storage.prune_logs(cutoff, self.max_rows)

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < self.prune_seconds:
            return
        self._last_prune = time.monotonic()
        try:
            deleted = self.prune()
        except StoreUnavailable as exc:
            log.warning("request log retention skipped: %s", exc.reason)
            return
        if deleted:
            log.info("request log retention: %d rows deleted", deleted)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued row is written (tests and shutdown), at most ``timeout`` s."""
        deadline = time.time() + timeout
        while self.queue.unfinished_tasks and time.time() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        """Drain the queue and stop the writer (at most about 15 s)."""
        try:
            self.queue.put(None, timeout=5)
        except queue.Full:  # the writer is gone or stuck: what is queued is lost, and counted
            self._drop(self.queue.qsize(), "the service stopped with the writer stuck")
        self._thread.join(timeout=10)
        if self._owns:
            self.storage.close()

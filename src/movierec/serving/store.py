"""SQLite stores: the feedback event store and the asynchronous request log.

Feedback events are written synchronously (the caller needs them on the next request)
and read per request, so every worker process sees every event. Request-log rows go
through an in-memory queue to a writer thread, so logging never blocks a response; when
the queue is full a row is dropped and counted rather than making the caller wait.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from movierec.serving.metrics import LOG_DROPPED

log = logging.getLogger("movierec.serving")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    rating REAL,
    event TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_user ON feedback (user_id, timestamp);
CREATE TABLE IF NOT EXISTS bundle_pointer (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    path TEXT NOT NULL,
    version TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS request_logs (
    request_id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    user_id INTEGER,
    endpoint TEXT NOT NULL,
    model_version TEXT,
    item_ids TEXT NOT NULL,
    scores TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    is_fallback INTEGER NOT NULL,
    fallback_reason TEXT
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the service database in WAL mode, safe across processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


class EventStore:
    """Feedback events (user, item, rating or event kind, time)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.Lock()

    def add(self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int) -> int:
        """Store one event and return its id."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO feedback (user_id, item_id, rating, event, timestamp) VALUES (?, ?, ?, ?, ?)",
                (user_id, item_id, rating, event, timestamp),
            )
            return int(cur.lastrowid)

    def items_of(self, user_id: int) -> list[int]:
        """The user's feedback items, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id FROM feedback WHERE user_id = ? ORDER BY timestamp, id", (user_id,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def all_events(self) -> list[tuple[int, int, float | None, str, int]]:
        """Every stored event (for retraining and replay)."""
        with self._lock:
            return self._conn.execute(
                "SELECT user_id, item_id, rating, event, timestamp FROM feedback ORDER BY timestamp, id"
            ).fetchall()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class RequestLog:
    """Writes request rows from a queue on a background thread, in small transactions."""

    def __init__(self, path: Path, max_queue: int = 10_000):
        self.path = Path(path)
        self.queue: queue.Queue[tuple | None] = queue.Queue(maxsize=max_queue)
        self.dropped = 0
        self._conn = connect(self.path)
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
    ) -> None:
        """Queue one row; never blocks (a full queue drops the row and counts it)."""
        row = (
            request_id,
            time.time(),
            user_id,
            endpoint,
            model_version,
            json.dumps(item_ids),
            json.dumps([round(float(s), 6) for s in scores]),
            latency_ms,
            int(is_fallback),
            fallback_reason,
        )
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            LOG_DROPPED.inc()  # nothing lost silently: exported, and logged (first, then every 1000th)
            if self.dropped % 1000 == 1:
                log.warning(
                    "request log queue full (%d rows): %d rows dropped so far", self.queue.maxsize, self.dropped
                )

    def _run(self) -> None:
        while True:
            row = self.queue.get()
            if row is None:
                return
            batch = [row]
            while len(batch) < 500:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(batch)
                    return
                batch.append(nxt)
            self._write(batch)

    def _write(self, rows: list[tuple]) -> None:
        for attempt in range(5):
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO request_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._conn.execute("COMMIT")
                return
            except sqlite3.OperationalError:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass
                time.sleep(0.05 * (attempt + 1))
        self.dropped += len(rows)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queue is drained (tests and shutdown)."""
        deadline = time.time() + timeout
        while not self.queue.empty() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    def close(self) -> None:
        """Drain the queue and stop the writer."""
        self.queue.put(None)
        self._thread.join(timeout=10)
        self._conn.close()


class BundlePointer:
    """The bundle every worker should serve, after an admin reload (one row, shared by workers)."""

    def __init__(self, path: Path):
        self._conn = connect(path)
        self._lock = threading.Lock()

    def set(self, bundle_path: str, version: str) -> None:
        """Point every worker at ``bundle_path`` (already validated by the caller)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO bundle_pointer VALUES (1, ?, ?, ?)", (bundle_path, version, time.time())
            )

    def get(self) -> tuple[str, str] | None:
        """``(path, version)`` of the requested bundle, or None when no reload happened."""
        with self._lock:
            row = self._conn.execute("SELECT path, version FROM bundle_pointer WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def clear(self) -> None:
        """Forget earlier reloads (a fresh start serves the configured bundle)."""
        with self._lock:
            self._conn.execute("DELETE FROM bundle_pointer")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def read_request_logs(path: Path) -> list[dict[str, Any]]:
    """Every logged request as a dict (for replay and tests)."""
    conn = connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM request_logs ORDER BY time").fetchall()]
    conn.close()
    for row in rows:
        row["item_ids"] = json.loads(row["item_ids"])
        row["scores"] = json.loads(row["scores"])
    return rows

"""The feedback event store and the shared bundle pointer, in the service's SQLite file.

Feedback events are written synchronously (the caller needs them on the next request)
and read per request, so every worker process sees every event. Every event is kept
(retraining reads them all), but serving reads only a user's most recent
``feedback_per_user`` events, and a user may post at most ``feedback_rate_limit`` events
per ``feedback_rate_window_seconds`` (counted across workers, in the database), so one
client can neither slow down nor empty another user's recommendations by flooding it.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from movierec.serving.change_clock import ChangeClock, clock_file_of
from movierec.serving.database import Database, StoreUnavailable, log_file_of, open_database
from movierec.serving.request_log import RequestLog
from movierec.serving.settings import Settings

__all__ = ["BundlePointer", "EventStore", "RateLimited", "RequestLog", "StoreUnavailable", "read_request_logs"]


# feedback items (and users) one reading thread remembers before it starts over: at most
# some tens of megabytes, however many users post feedback between two commits
SEEN_ITEMS = 1_000_000


class RateLimited(Exception):
    """A user posted more feedback than the rate limit allows; retry after ``retry_after`` seconds."""

    def __init__(self, user_id: int, limit: int, window: float, retry_after: float):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"user {user_id} posted {limit} feedback events in the last {window:g} s, the most allowed "
            f"(MOVIEREC_FEEDBACK_RATE_LIMIT); retry in {self.retry_after} s"
        )


class EventStore:
    """Feedback events (user, item, rating or event kind, time), capped and rate-limited per user."""

    def __init__(self, path: Path, settings: Settings | None = None, db: Database | None = None):
        settings = settings or Settings()
        self.path = Path(path)
        self.db = db or open_database(self.path, settings)
        self._owns_db = db is None
        self.per_user = settings.feedback_per_user
        self.rate_limit = settings.feedback_rate_limit
        self.rate_window = settings.feedback_rate_window_seconds
        self._seen = threading.local()  # per reading thread: users' items as of one clock value
        self.clock = ChangeClock(clock_file_of(self.path))

    def add(self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int) -> int:
        """Store one event and return its id.

        Raises:
            RateLimited: the user reached the rate limit (nothing is stored).
            StoreUnavailable: the database cannot take the write now.
        """

        def insert(conn: sqlite3.Connection) -> int:
            now = time.time()
            since = now - self.rate_window
            recent = conn.execute(
                "SELECT COUNT(*), MIN(received) FROM feedback WHERE user_id = ? AND received >= ?", (user_id, since)
            ).fetchone()
            if recent[0] >= self.rate_limit:
                raise RateLimited(user_id, self.rate_limit, self.rate_window, recent[1] + self.rate_window - now)
            cur = conn.execute(
                "INSERT INTO feedback (user_id, item_id, rating, event, timestamp, received) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, item_id, rating, event, timestamp, now),
            )
            return int(cur.lastrowid)

        event_id = self.db.write(insert)
        self.clock.advance()  # after the commit: every worker's next read sees the event
        return event_id

    def items_of(self, user_id: int) -> list[int]:
        """The user's ``feedback_per_user`` most recently posted feedback items, in the order of
        their timestamps. Recency is by arrival, not by the client's timestamp, so events
        posted with timestamps far in the future cannot hold the window.

        Every call reads the feedback counter that each worker advances after committing
        feedback (:mod:`~movierec.serving.change_clock`, a read of shared memory); until it
        moves, the items this thread read for the user are still the answer.
        """
        version = self.clock.now()
        seen = self._seen
        if getattr(seen, "version", None) != version or seen.count >= SEEN_ITEMS:
            seen.version, seen.items, seen.count = version, {}, 0
        found = seen.items.get(user_id)
        if found is None:
            rows = self.db.read(
                "SELECT item_id FROM (SELECT item_id, timestamp, id FROM feedback WHERE user_id = ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY timestamp, id",
                (user_id, self.per_user),
            )
            found = seen.items[user_id] = [int(r[0]) for r in rows]
            seen.count += len(found) + 1
        return list(found)

    def all_events(self) -> list[tuple[int, int, float | None, str, int]]:
        """Every stored event (for retraining and replay)."""
        return self.db.read("SELECT user_id, item_id, rating, event, timestamp FROM feedback ORDER BY timestamp, id")

    def close(self) -> None:
        """Close the counter, and the connections when this store opened them."""
        self.clock.close()
        if self._owns_db:
            self.db.close()


class BundlePointer:
    """The bundle every worker should serve, after an admin reload (one row, shared by workers)."""

    def __init__(self, path: Path, settings: Settings | None = None, db: Database | None = None):
        self.db = db or open_database(Path(path), settings)
        self._owns_db = db is None

    def set(self, bundle_path: str, version: str) -> None:
        """Point every worker at ``bundle_path`` (already validated by the caller)."""
        self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO bundle_pointer VALUES (1, ?, ?, ?)", (bundle_path, version, time.time())
            )
        )

    def get(self) -> tuple[str, str] | None:
        """``(path, version)`` of the requested bundle, or None when no reload happened."""
        rows = self.db.read("SELECT path, version FROM bundle_pointer WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows else None

    def clear(self) -> None:
        """Forget earlier reloads (a fresh start serves the configured bundle)."""
        self.db.write(lambda conn: conn.execute("DELETE FROM bundle_pointer"))

    def close(self) -> None:
        """Close the connections (when this pointer opened them)."""
        if self._owns_db:
            self.db.close()


def read_request_logs(path: Path) -> list[dict[str, Any]]:
    """Every logged request as a dict, oldest first (for replay and tests).

    ``path`` is the service database; the rows are in the request log's file beside it
    (:func:`~movierec.serving.database.log_file_of`). Rows that older versions wrote into
    the database itself are read too until the service next starts and moves them
    (:func:`~movierec.serving.database.move_legacy_request_log`).
    """
    rows: list[dict[str, Any]] = []
    for source in (Path(path), log_file_of(path)):
        if not source.exists():
            continue
        conn = sqlite3.connect(source.absolute().as_uri() + "?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_logs'").fetchone():
                rows += [dict(r) for r in conn.execute("SELECT * FROM request_logs").fetchall()]
        finally:
            conn.close()
    rows.sort(key=lambda row: row["time"])
    for row in rows:
        row["item_ids"] = json.loads(row["item_ids"])
        row["scores"] = json.loads(row["scores"])
    return rows

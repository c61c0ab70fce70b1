"""The feedback event store and the shared bundle pointer, on the service's storage.

Feedback events are written synchronously (the caller needs them on the next request)
and read per request, so every worker, and with PostgreSQL every replica, sees every
event. Every event is kept (retraining reads them all), but serving reads only a user's
most recent ``feedback_per_user`` events, and a user may post at most
``feedback_rate_limit`` events per ``feedback_rate_window_seconds`` (counted across
workers and replicas, in the database), so one client can neither slow down nor empty
another user's recommendations by flooding it.

Where the rows live is the storage's business (:mod:`~movierec.serving.storage`: SQLite
files on one host, or one PostgreSQL database for several).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from movierec.serving.database import StoreUnavailable, log_file_of
from movierec.serving.request_log import RequestLog
from movierec.serving.settings import Settings
from movierec.serving.storage import Pointer, RateLimited, Storage, is_database_url, open_storage

__all__ = ["BundlePointer", "EventStore", "RateLimited", "RequestLog", "StoreUnavailable", "read_request_logs"]


# feedback items (and users) one reading thread remembers before it starts over: at most
# some tens of megabytes, however many users post feedback between two commits
SEEN_ITEMS = 1_000_000


def _storage(where: Storage | Path | str, settings: Settings | None) -> tuple[Storage, bool]:
    """``(storage, owned)``: ``where`` itself, or the storage it names opened here (and owned)."""
    if isinstance(where, (Path, str)):
        return open_storage(settings, location=where), True
    return where, False


class EventStore:
    """Feedback events (user, item, rating or event kind, time), capped and rate-limited per user.

    Args:
        where: the service's storage, or a SQLite path or PostgreSQL URL to open one (then
            closed with this store).
        settings: the service settings (default: from the environment).
    """

    def __init__(self, where: Storage | Path | str, settings: Settings | None = None):
        settings = settings or Settings()
        self.storage, self._owns = _storage(where, settings)
        self.per_user = settings.feedback_per_user
        self.rate_limit = settings.feedback_rate_limit
        self.rate_window = settings.feedback_rate_window_seconds
        self._seen = threading.local()  # per reading thread: users' items as of one change-signal value

    def add(self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int) -> int:
        """Store one event and return its id.

        Raises:
            RateLimited: the user reached the rate limit (nothing is stored).
            StoreUnavailable: the database cannot take the write now.
        """
        event_id = self.storage.add_feedback(
            user_id, item_id, rating, event, timestamp, self.rate_limit, self.rate_window
        )
        self.storage.changes.advance()  # after the commit: every worker's next read sees the event
        return event_id

    def items_of(self, user_id: int) -> list[int]:
        """The user's ``feedback_per_user`` most recently posted feedback items, in the order of
        their timestamps. Recency is by arrival, not by the client's timestamp, so events
        posted with timestamps far in the future cannot hold the window.

        Every call reads the storage's change signal (SQLite: a counter in shared memory that
        each worker advances after committing feedback; PostgreSQL with ``notify``: a counter
        fed by LISTEN/NOTIFY); until it moves, the items this thread read for the user are still
        the answer. A signal that cannot vouch for its value (None: PostgreSQL's default
        ``query``, or a listener that is down) means a read every time.
        """
        version = self.storage.changes.now()
        if version is None:
            return self.storage.recent_items(user_id, self.per_user)
        seen = self._seen
        if getattr(seen, "version", None) != version or seen.count >= SEEN_ITEMS:
            seen.version, seen.items, seen.count = version, {}, 0
        found = seen.items.get(user_id)
        if found is None:
            found = seen.items[user_id] = self.storage.recent_items(user_id, self.per_user)
            seen.count += len(found) + 1
        return list(found)

    def all_events(self) -> list[tuple[int, int, float | None, str, int]]:
        """Every stored event (for retraining and replay)."""
        return self.storage.all_feedback()

    def close(self) -> None:
        """Close the storage when this store opened it."""
        if self._owns:
            self.storage.close()


class BundlePointer:
    """The bundle every worker should serve, after an admin reload (one row, shared by every
    worker, and with PostgreSQL by every replica)."""

    def __init__(self, where: Storage | Path | str, settings: Settings | None = None):
        self.storage, self._owns = _storage(where, settings)

    def set(self, source: str, version: str, base: str | None = None) -> None:
        """Point every worker at ``source`` (a shared folder or a pinned registry address,
        validated by the caller); ``base``: the configured bundle's version the caller started from."""
        self.storage.set_pointer(Pointer(source, version, base))

    def get(self) -> Pointer | None:
        """The requested bundle, or None when no reload happened."""
        return self.storage.get_pointer()

    def clear(self) -> None:
        """Forget earlier reloads (a fresh start serves the configured bundle)."""
        self.storage.clear_pointer()

    def close(self) -> None:
        """Close the storage when this pointer opened it."""
        if self._owns:
            self.storage.close()


def read_request_logs(where: Path | str) -> list[dict[str, Any]]:
    """Every logged request as a dict, oldest first (for replay and tests).

    ``where`` is a PostgreSQL URL, or the SQLite service database: its rows are in the
    request log's file beside it (:func:`~movierec.serving.database.log_file_of`), read
    without creating anything; rows that older versions wrote into the database itself are
    read too until the service next starts and moves them
    (:func:`~movierec.serving.database.move_legacy_request_log`).
    """
    if is_database_url(where):
        storage = open_storage(location=where)
        try:
            rows = storage.read_logs()
        finally:
            storage.close()
    else:
        rows = _read_sqlite_logs(Path(where))
    rows.sort(key=lambda row: row["time"])
    for row in rows:
        row["item_ids"] = json.loads(row["item_ids"])
        row["scores"] = json.loads(row["scores"])
    return rows


def _read_sqlite_logs(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for source in (path, log_file_of(path)):
        if not source.exists():
            continue
        conn = sqlite3.connect(source.absolute().as_uri() + "?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_logs'").fetchone():
                rows += [dict(r) for r in conn.execute("SELECT * FROM request_logs").fetchall()]
        finally:
            conn.close()
    return rows

"""The SQLite backend of :class:`~movierec.serving.storage.Storage`: the default, on one host.

Two files (see :mod:`~movierec.serving.database`): the service database holds feedback and
the reload pointer; the request log has a file of its own beside it, so feedback never
queues behind the log's batches. Every worker of one ``movierec serve`` opens both, pinned
to the files' identities. Writes are serialised (``BEGIN IMMEDIATE``), so counting a user's
recent events and inserting the next is atomic across workers. Feedback changes are
signalled through a counter in shared memory (:mod:`~movierec.serving.change_clock`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from movierec.serving.change_clock import ChangeClock, clock_file_of
from movierec.serving.database import Database, log_file_of, move_legacy_request_log, open_database
from movierec.serving.storage import LOG_COLUMNS, LogRow, Pointer, RateLimited


class SqliteStorage:
    """Feedback, pointer and request log in SQLite files at ``path`` (see the module docstring).

    Args:
        path: the service database; the request log's file is :func:`log_file_of` ``(path)``.
        settings: the service settings (timeouts, free-space floor, the files' identities).
        db: the opened service database (else opened here).
        log_db: the opened request log file (else opened here).

    Raises:
        StoreUnavailable: a file cannot be created, opened or written.
    """

    def __init__(self, path: Path, settings: Any = None, db: Database | None = None, log_db: Database | None = None):
        from movierec.serving.settings import Settings

        settings = settings or Settings()
        self.path = Path(path)
        self.where = str(self.path)
        self._owned: list[Database] = []
        self.db = db or self._own(open_database(self.path, settings))
        try:
            if log_db is None:
                log_db = self._own(open_database(log_file_of(self.path), settings, log=True))
                if not settings.request_log_identity:  # `movierec serve` moved old rows before any worker
                    move_legacy_request_log(self.path, settings.database_timeout_seconds)
            self.log_db = log_db
            self.changes = ChangeClock(clock_file_of(self.path))
        except BaseException:
            self.close()
            raise

    def _own(self, db: Database) -> Database:
        self._owned.append(db)
        return db

    # ---- feedback ---------------------------------------------------------------------------

    def add_feedback(
        self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int, limit: int, window: float
    ) -> int:
        """See :meth:`Storage.add_feedback`; the count and the insert share one immediate transaction."""

        def insert(conn: sqlite3.Connection) -> int:
            now = time.time()
            recent = conn.execute(
                "SELECT COUNT(*), MIN(received) FROM feedback WHERE user_id = ? AND received >= ?",
                (user_id, now - window),
            ).fetchone()
            if recent[0] >= limit:
                raise RateLimited(user_id, limit, window, recent[1] + window - now)
            cur = conn.execute(
                "INSERT INTO feedback (user_id, item_id, rating, event, timestamp, received) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, item_id, rating, event, timestamp, now),
            )
            return int(cur.lastrowid)

        return self.db.write(insert)

    def recent_items(self, user_id: int, n: int) -> list[int]:
        """See :meth:`Storage.recent_items`."""
        rows = self.db.read(
            "SELECT item_id FROM (SELECT item_id, timestamp, id FROM feedback WHERE user_id = ? "
            "ORDER BY id DESC LIMIT ?) ORDER BY timestamp, id",
            (user_id, n),
        )
        return [int(r[0]) for r in rows]

    def all_feedback(self) -> list[tuple[int, int, float | None, str, int]]:
        """See :meth:`Storage.all_feedback`."""
        return self.db.read("SELECT user_id, item_id, rating, event, timestamp FROM feedback ORDER BY timestamp, id")

    def feedback_after(self, after_id: int, until: float, limit: int) -> list[tuple[int, float, int, int]]:
        """See :meth:`Storage.feedback_after`."""
        return self.db.read(
            "SELECT id, received, user_id, item_id FROM feedback WHERE id > ? AND received <= ? ORDER BY id LIMIT ?",
            (after_id, until, limit),
        )

    def last_feedback_id(self) -> int:
        """See :meth:`Storage.last_feedback_id`."""
        return int(self.db.read("SELECT COALESCE(MAX(id), 0) FROM feedback")[0][0])

    # ---- the reload pointer -----------------------------------------------------------------

    def get_pointer(self) -> Pointer | None:
        """See :meth:`Storage.get_pointer`."""
        rows = self.db.read("SELECT path, version, base FROM bundle_pointer WHERE id = 1")
        return Pointer(*rows[0]) if rows else None

    def set_pointer(self, pointer: Pointer) -> None:
        """See :meth:`Storage.set_pointer`."""
        self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO bundle_pointer (id, path, version, updated, base) VALUES (1, ?, ?, ?, ?)",
                (pointer.source, pointer.version, time.time(), pointer.base),
            )
        )

    def clear_pointer(self) -> None:
        """See :meth:`Storage.clear_pointer`."""
        self.db.write(lambda conn: conn.execute("DELETE FROM bundle_pointer"))

    # ---- the request log --------------------------------------------------------------------

    def write_logs(self, rows: list[LogRow]) -> None:
        """See :meth:`Storage.write_logs`."""
        self.log_db.write(
            lambda conn: conn.executemany(
                "INSERT OR IGNORE INTO request_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        )

    def prune_logs(self, cutoff: float, max_rows: int) -> int:
        """See :meth:`Storage.prune_logs`."""

        def delete(conn: sqlite3.Connection) -> int:
            old = conn.execute("DELETE FROM request_logs WHERE time < ?", (cutoff,)).rowcount
            # rows get increasing rowids as they are written, so the newest max_rows are those
            # above max(rowid) - max_rows: one range delete, not a walk over a million entries
            excess = conn.execute(
                "DELETE FROM request_logs WHERE rowid <= (SELECT MAX(rowid) FROM request_logs) - ?", (max_rows,)
            ).rowcount
            return old + excess

        return self.log_db.write(delete)

    def logs_after(self, cursor: int, limit: int) -> list[tuple[int, float, int | None, str, str]]:
        """See :meth:`Storage.logs_after`; the cursor is the rowid (writes are serialised, so
        rows become visible in rowid order)."""
        return self.log_db.read(
            "SELECT rowid, time, user_id, endpoint, item_ids FROM request_logs WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (cursor, limit),
        )

    def last_log_cursor(self) -> int:
        """See :meth:`Storage.last_log_cursor`."""
        return int(self.log_db.read("SELECT COALESCE(MAX(rowid), 0) FROM request_logs")[0][0])

    def read_logs(self) -> list[dict[str, Any]]:
        """See :meth:`Storage.read_logs`."""
        rows = self.log_db.read(f"SELECT {', '.join(LOG_COLUMNS)} FROM request_logs ORDER BY time")
        return [dict(zip(LOG_COLUMNS, row)) for row in rows]

    # ---- health -----------------------------------------------------------------------------

    def health(self) -> str | None:
        """See :meth:`Storage.health`: both files (identity, free space, a write after a failure)."""
        return self.db.health() or self.log_db.health()

    def close(self) -> None:
        """Close the counter and the files this object opened."""
        changes = getattr(self, "changes", None)
        if changes is not None:
            changes.close()
            self.changes = None  # type: ignore[assignment]
        for db in self._owned:
            db.close()
        self._owned.clear()

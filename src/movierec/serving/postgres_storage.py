"""The PostgreSQL backend of :class:`~movierec.serving.storage.Storage`: one database for every replica.

Set ``MOVIEREC_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/NAME`` and every worker of
every replica, on any host, shares feedback, the reload pointer and the request log.

How each guarantee holds with many writers:

- **Rate limit across replicas**: a feedback insert first takes a transaction-scoped
  advisory lock on its user, so counting the user's recent events and inserting the next is
  one step for every writer (waiting at most ``lock_timeout``). Times are the server's clock,
  so replicas with skewed clocks count one window.
- **Feedback seen by every replica on the next request**: by default each request reads the
  user's feedback (one indexed query, ``feedback_signal="query"``); with ``"notify"`` workers
  read only after a ``NOTIFY``, which every insert sends in its transaction
  (:mod:`~movierec.serving.notify_clock`, where its window is measured).
- **The request log's cursor**: log rows are numbered by a sequence when inserted, but
  concurrent writers may commit out of that order, so a reader that moved past number n
  could miss a smaller number committed later. :meth:`PostgresStorage.logs_after` returns
  only rows stored at least ``settle_seconds`` ago (transactions are bounded far below
  that), and the quality digest never skips one.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from movierec.serving.notify_clock import CHANNEL, EveryRequest, NotifyClock
from movierec.serving.postgres import PostgresDatabase
from movierec.serving.storage import LOG_COLUMNS, LogRow, Pointer, RateLimited

FEEDBACK_LOCK = 7_402_312  # the advisory lock class of the per-user feedback lock
SETTLE_SECONDS = 3.0
PRUNE_TIMEOUT_MS = 60_000  # retention's deletes may take longer than a request's statement
_NOW = "extract(epoch FROM clock_timestamp())"
# count the user's events in the window; below the limit, store the event and notify every worker
_ADD = f"""
WITH recent AS (
    SELECT COUNT(*) AS n, MIN(received) AS first, {_NOW} AS now
    FROM feedback WHERE user_id = %(user)s AND received >= {_NOW} - %(window)s
), stored AS (
    INSERT INTO feedback (user_id, item_id, rating, event, timestamp, received)
    SELECT %(user)s, %(item)s, %(rating)s, %(event)s, %(timestamp)s, recent.now FROM recent
    WHERE recent.n < %(limit)s
    RETURNING id
)
SELECT recent.n, recent.first, recent.now, (SELECT id FROM stored, pg_notify(%(channel)s, %(payload)s))
FROM recent
"""


class PostgresStorage:
    """Feedback, pointer and request log in one PostgreSQL database (see the module docstring).

    Args:
        url: ``postgresql://USER:PASSWORD@HOST:PORT/NAME``.
        settings: the service settings (timeout, pool size, the change signal).
        settle_seconds: how old a log row must be before :meth:`logs_after` returns it (default:
            ``SETTLE_SECONDS`` or three database timeouts, whichever is longer).

    Raises:
        StoreUnavailable: the server cannot be reached or the schema cannot be migrated.
    """

    def __init__(self, url: str, settings: Any = None, settle_seconds: float | None = None):
        from movierec.serving.settings import Settings

        settings = settings or Settings()
        self.db = PostgresDatabase(url, settings.database_timeout_seconds, settings.database_pool_size)
        self.where = self.db.where
        # a write transaction's statements each end within the timeout: three of them is far past any
        self.settle_seconds = settle_seconds if settle_seconds is not None else max(SETTLE_SECONDS, 3 * self.db.timeout)
        self.changes: NotifyClock | EveryRequest = (
            NotifyClock(url, self.db.kwargs) if settings.feedback_signal == "notify" else EveryRequest()
        )

    # ---- feedback ---------------------------------------------------------------------------

    def add_feedback(
        self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int, limit: int, window: float
    ) -> int:
        """See :meth:`Storage.add_feedback`. One transaction, sent as a pipeline (two round trips
        with the commit): the user's advisory lock, then one statement that counts the user's
        recent events and, under the limit, inserts the event and sends the notification. The
        count's snapshot is taken after the lock is held, so no other writer's event is missed."""
        params = {
            "user": user_id,
            "item": item_id,
            "rating": rating,
            "event": event,
            "timestamp": timestamp,
            "window": window,
            "limit": limit,
            "channel": CHANNEL,
            "payload": str(user_id),
        }

        def insert(conn: psycopg.Connection) -> tuple:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s::int)", (FEEDBACK_LOCK, user_id % 2_147_483_647))
            return conn.execute(_ADD, params).fetchone()

        _, first, now, event_id = self.db.write(insert, pipeline=True)
        if event_id is None:
            raise RateLimited(user_id, limit, window, float(first) + window - float(now))
        return int(event_id)

    def recent_items(self, user_id: int, n: int) -> list[int]:
        """See :meth:`Storage.recent_items` (an index range on ``(user_id, id)``)."""
        rows = self.db.read(
            "SELECT item_id FROM (SELECT item_id, timestamp, id FROM feedback WHERE user_id = %s "
            "ORDER BY id DESC LIMIT %s) AS recent ORDER BY timestamp, id",
            (user_id, n),
        )
        return [int(r[0]) for r in rows]

    def all_feedback(self) -> list[tuple[int, int, float | None, str, int]]:
        """See :meth:`Storage.all_feedback`."""
        return self.db.read("SELECT user_id, item_id, rating, event, timestamp FROM feedback ORDER BY timestamp, id")

    def feedback_after(self, after_id: int, until: float, limit: int) -> list[tuple[int, float, int, int]]:
        """See :meth:`Storage.feedback_after`."""
        return self.db.read(
            "SELECT id, received, user_id, item_id FROM feedback WHERE id > %s AND received <= %s ORDER BY id LIMIT %s",
            (after_id, until, limit),
        )

    def last_feedback_id(self) -> int:
        """See :meth:`Storage.last_feedback_id`."""
        return int(self.db.read("SELECT COALESCE(MAX(id), 0) FROM feedback")[0][0])

    # ---- the reload pointer -----------------------------------------------------------------

    def get_pointer(self) -> Pointer | None:
        """See :meth:`Storage.get_pointer`."""
        rows = self.db.read("SELECT source, version, base FROM bundle_pointer WHERE id = 1")
        return Pointer(*rows[0]) if rows else None

    def set_pointer(self, pointer: Pointer) -> None:
        """See :meth:`Storage.set_pointer`."""
        self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO bundle_pointer (id, source, version, base, updated) VALUES (1, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source, version = EXCLUDED.version, "
                "base = EXCLUDED.base, updated = EXCLUDED.updated",
                (pointer.source, pointer.version, pointer.base, time.time()),
            )
        )

    def clear_pointer(self) -> None:
        """See :meth:`Storage.clear_pointer`."""
        self.db.write(lambda conn: conn.execute("DELETE FROM bundle_pointer"))

    # ---- the request log --------------------------------------------------------------------

    def write_logs(self, rows: list[LogRow]) -> None:
        """See :meth:`Storage.write_logs` (psycopg pipelines the rows: one round trip per batch)."""

        def insert(conn: psycopg.Connection) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO request_logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join(['%s'] * len(LOG_COLUMNS))}) "
                    "ON CONFLICT (request_id) DO NOTHING",
                    rows,
                )

        self.db.write(insert, self.db.logs)

    def prune_logs(self, cutoff: float, max_rows: int) -> int:
        """See :meth:`Storage.prune_logs`: by age, then all below the newest ``max_rows`` numbers
        (numbers skipped by failed inserts count, so at most ``max_rows`` rows stay)."""

        def delete(conn: psycopg.Connection) -> int:
            conn.execute(f"SET LOCAL statement_timeout = {PRUNE_TIMEOUT_MS}")
            old = conn.execute("DELETE FROM request_logs WHERE time < %s", (cutoff,)).rowcount
            excess = conn.execute(
                "DELETE FROM request_logs WHERE seq <= (SELECT MAX(seq) FROM request_logs) - %s", (max_rows,)
            ).rowcount
            return old + excess

        return self.db.write(delete, self.db.logs)

    def logs_after(self, cursor: int, limit: int) -> list[tuple[int, float, int | None, str, str]]:
        """See :meth:`Storage.logs_after`: rows stored ``settle_seconds`` ago or earlier."""
        return self.db.read(
            "SELECT seq, time, user_id, endpoint, item_ids FROM request_logs WHERE seq > %s "
            "AND stored_at <= clock_timestamp() - make_interval(secs => %s) ORDER BY seq LIMIT %s",
            (cursor, self.settle_seconds, limit),
        )

    def last_log_cursor(self) -> int:
        """See :meth:`Storage.last_log_cursor`."""
        return int(self.db.read("SELECT COALESCE(MAX(seq), 0) FROM request_logs")[0][0])

    def read_logs(self) -> list[dict[str, Any]]:
        """See :meth:`Storage.read_logs`."""
        rows = self.db.read(f"SELECT {', '.join(LOG_COLUMNS)} FROM request_logs ORDER BY time, seq")
        return [dict(zip(LOG_COLUMNS, row)) for row in rows]

    # ---- health -----------------------------------------------------------------------------

    def health(self) -> str | None:
        """See :meth:`Storage.health`: the server answers, and takes writes again after a failure."""
        return self.db.health()

    def close(self) -> None:
        """Stop the listener and close the pools."""
        self.changes.close()
        self.db.close()

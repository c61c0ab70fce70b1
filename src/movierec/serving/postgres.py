"""Connections to the service's PostgreSQL database: pools, bounded waits, errors that say why, the schema.

Each worker holds three small psycopg pools, so no kind of work queues behind another:
reads (a user's feedback, the reload pointer, the quality digest), feedback and pointer
writes, and the request log's writer. Every wait is bounded by ``database_timeout_seconds``:
taking a connection from a pool, connecting, each statement (``statement_timeout``) and
each lock (``lock_timeout``). A failure becomes :class:`StoreUnavailable` with a reason
that names the server (without its password) and what went wrong; the service answers it
with 503. Reads never wait on writers: PostgreSQL reads a snapshot (MVCC), and the read
pool is not the write pool.

The schema is created and migrated at start (:func:`migrate`): a table records which of
:data:`MIGRATIONS` ran, and an advisory lock lets only one starting worker apply them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from movierec.redact import redact
from movierec.serving.database import StoreUnavailable

log = logging.getLogger("movierec.serving")
T = TypeVar("T")

MIGRATION_LOCK = 7_402_311  # pg_advisory_lock key held while the schema is migrated
# Each entry is one schema version: statements run in one transaction. Never edit a released
# entry; append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS feedback (
            id BIGSERIAL PRIMARY KEY,
            user_id BIGINT NOT NULL,
            item_id BIGINT NOT NULL,
            rating DOUBLE PRECISION,
            event TEXT NOT NULL,
            timestamp BIGINT NOT NULL,
            received DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS feedback_user_recent ON feedback (user_id, id)",
        "CREATE INDEX IF NOT EXISTS feedback_user_received ON feedback (user_id, received)",
        """CREATE TABLE IF NOT EXISTS bundle_pointer (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT NOT NULL,
            version TEXT NOT NULL,
            base TEXT,
            updated DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS request_logs (
            seq BIGSERIAL PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            time DOUBLE PRECISION NOT NULL,
            user_id BIGINT,
            endpoint TEXT NOT NULL,
            model_version TEXT,
            item_ids TEXT NOT NULL,
            scores TEXT NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            is_fallback SMALLINT NOT NULL,
            fallback_reason TEXT,
            stored_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        )""",
        "CREATE INDEX IF NOT EXISTS request_logs_time ON request_logs (time)",
        "CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, time DOUBLE PRECISION NOT NULL)",
    ),
)


def connect_kwargs(timeout: float) -> dict[str, Any]:
    """libpq settings for every connection: autocommit, and waits bounded by ``timeout`` seconds."""
    millis = max(2, int(timeout * 1000))
    # a lock wait gives up a little before the statement would, so it is reported as what it is
    return {
        "autocommit": True,
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's least
        "application_name": "movierec",
        "options": f"-c statement_timeout={millis} -c lock_timeout={millis * 9 // 10} "
        f"-c idle_in_transaction_session_timeout={10 * millis}",
    }


def explain(exc: BaseException, where: str, timeout: float) -> str:
    """A one-line reason for a failed database call (the server named without credentials)."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PoolTimeout):
        return (
            f"no connection to the service database {where} within {timeout:g} s: the server is unreachable "
            "or every connection is busy; retry shortly"
        )
    if isinstance(exc, errors.LockNotAvailable):
        return f"the service database {where} stayed locked by another writer for over {timeout:g} s; retry shortly"
    if isinstance(exc, errors.QueryCanceled):
        return f"the service database {where} did not answer within {timeout:g} s ({first}); retry shortly"
    if isinstance(exc, errors.DiskFull):
        return f"the disk of the service database {where} is full ({first}); free space, then retry"
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return f"the service database {where} is read-only ({first}); point the service at a writable primary"
    if isinstance(exc, errors.InsufficientPrivilege):
        return f"the service database {where} refuses this user ({first}); grant it the tables"
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return f"the service database {where} cannot be reached ({first}); check the server and MOVIEREC_DATABASE_URL"
    return f"the service database {where} failed: {first}"


def _busy(exc: BaseException) -> bool:
    """Failures that say the database is busy now, not that it cannot take writes."""
    return isinstance(exc, (PoolTimeout, errors.LockNotAvailable, errors.QueryCanceled))


def _broken(exc: BaseException) -> bool:
    """A connection lost (no SQL state: the socket closed; or the server shut the session down)."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    return isinstance(exc, psycopg.OperationalError) and (
        exc.sqlstate is None or isinstance(exc, (errors.AdminShutdown, errors.CrashShutdown))
    )


def migrate(conn: psycopg.Connection) -> int:
    """Bring the schema up to the last of :data:`MIGRATIONS`; returns the version it was at.

    Runs under an advisory lock, so workers starting together apply each migration once.
    """
    conn.execute("SET statement_timeout = 0")  # an index built on a large table may take a while
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS movierec_schema (version INTEGER PRIMARY KEY)")
        found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM movierec_schema").fetchone()
        current = int(found[0]) if found else 0
        for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO movierec_schema VALUES (%s)", (version,))
            log.info("service database: schema migrated to version %d", version)
        return current
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def prepare(url: str, timeout: float) -> None:
    """Connect once, create or migrate the schema and prove a write works (``movierec serve``
    runs it before starting the workers).

    Raises:
        StoreUnavailable: the server cannot be reached or refuses, with the reason.
    """
    where = redact(url)
    try:
        with psycopg.connect(url, **connect_kwargs(timeout)) as conn:
            migrate(conn)
            with conn.transaction():
                _probe(conn)
    except psycopg.Error as exc:
        raise StoreUnavailable(explain(exc, where, timeout)) from exc


def _probe(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO write_probe VALUES (1, extract(epoch FROM clock_timestamp())) "
        "ON CONFLICT (id) DO UPDATE SET time = EXCLUDED.time"
    )


class PostgresDatabase:
    """One worker's connections to the service database (see the module docstring).

    Args:
        url: ``postgresql://USER:PASSWORD@HOST:PORT/NAME``.
        timeout: the longest any call waits, in seconds.
        pool_size: the most connections of the read pool, and of the write pool.

    Raises:
        StoreUnavailable: the server cannot be reached within ``timeout`` or the schema not migrated.
    """

    def __init__(self, url: str, timeout: float, pool_size: int = 4):
        self.url = url
        self.where = redact(url)
        self.timeout = timeout
        self.kwargs = connect_kwargs(timeout)
        self.write_error: str | None = None  # the last write's failure, until a write succeeds
        self._pools: list[ConnectionPool] = []
        try:
            with psycopg.connect(url, **self.kwargs) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise StoreUnavailable(explain(exc, self.where, timeout)) from exc
        self.reads = self._pool("read", pool_size)
        self.writes = self._pool("write", pool_size, checked=True)
        self.logs = self._pool("log", 1, checked=True)

    def _pool(self, name: str, size: int, checked: bool = False) -> ConnectionPool:
        pool = ConnectionPool(
            self.url,
            kwargs=self.kwargs,
            min_size=1,
            max_size=max(1, size),
            timeout=self.timeout,
            name=f"movierec-{name}",
            open=False,
            # a lost connection is retried with growing pauses (1, 2, 4 s) for this long, then given
            # up; the next request that needs one starts afresh, so a server back after an outage
            # of any length is used again within seconds
            reconnect_timeout=5.0,
            # a write cannot be retried safely once sent, so a write connection is checked (an
            # empty query, one round trip) before each use: after a server restart the first
            # writes find fresh connections instead of failing on stale ones
            check=ConnectionPool.check_connection if checked else None,
        )
        self._pools.append(pool)
        try:
            pool.open(wait=True, timeout=max(self.timeout, 2.0))
        except (PoolTimeout, psycopg.Error) as exc:
            self.close()
            raise StoreUnavailable(explain(exc, self.where, self.timeout)) from exc
        return pool

    def read(self, sql: str, args: tuple = (), pool: ConnectionPool | None = None) -> list[tuple]:
        """Rows of one query; a connection that broke since its last use (the server restarted)
        is replaced and the query asked once more."""
        for attempt in (1, 2):
            try:
                with (pool or self.reads).connection() as conn:
                    return conn.execute(sql, args).fetchall()
            except (PoolTimeout, psycopg.Error) as exc:
                if attempt == 2 or not _broken(exc):
                    raise StoreUnavailable(explain(exc, self.where, self.timeout)) from exc
        raise AssertionError("unreachable")

    def write(
        self, work: Callable[[psycopg.Connection], T], pool: ConnectionPool | None = None, pipeline: bool = False
    ) -> T:
        """Run ``work`` in one transaction on a write connection, bounded in time.

        ``pipeline``: send the transaction's statements without waiting for each answer (psycopg's
        pipeline mode: the begin, ``work``'s statements up to the first result it reads, and the
        commit travel together), for ``work`` that reads at most its last statement's result.

        Raises:
            StoreUnavailable: busy beyond the timeout, unreachable, full or read-only; the
                transaction is rolled back and nothing is half-written.
        """
        try:
            with (pool or self.writes).connection() as conn:
                if pipeline:
                    with conn.pipeline(), conn.transaction():
                        result = work(conn)
                else:
                    with conn.transaction():
                        result = work(conn)
        except (PoolTimeout, psycopg.Error) as exc:
            reason = explain(exc, self.where, self.timeout)
            if not _busy(exc):
                self.write_error = reason
            log.error("%s", reason)
            raise StoreUnavailable(reason) from exc
        self.write_error = None
        return result

    def health(self) -> str | None:
        """Why the database cannot take writes now, or None: it must answer a query on each pool
        (reads, writes, the request log), and after a failed write a probe write must succeed
        again (so the service turns ready by itself)."""
        try:
            for pool in self._pools:
                self.read("SELECT 1", pool=pool)
        except StoreUnavailable as exc:
            return exc.reason
        if self.write_error is not None:
            try:
                self.write(_probe)
            except StoreUnavailable as exc:
                return exc.reason
        return None

    def close(self) -> None:
        """Close every pool."""
        for pool in self._pools:
            pool.close()
        self._pools.clear()

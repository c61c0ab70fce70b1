"""The service's SQLite file: bounded waits, reads that never queue behind a write, and a health check.

Every worker process opens the same file in WAL mode. Writes go through one connection per
process, serialised by a lock that is itself waited on for at most ``timeout`` seconds;
reads use one read-only connection per thread, so a slow or stuck write never delays a
read (in WAL mode readers see the last committed state without taking the write lock).
SQLite's own wait for a lock held by another process is bounded by the same timeout.
Every failure becomes :class:`StoreUnavailable`, which the service answers with 503 and
a reason, never a 500 or a request that hangs.

The file is pinned by its identity (device and inode): ``movierec serve`` creates it before
starting the workers and passes the identity to them, so when the file is deleted or
replaced while the service runs, every worker (including one restarted later) refuses
writes and reports not ready, instead of some writing to an unlinked file whose rows
would be lost and others to a new one.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from movierec.errors import MovierecError

log = logging.getLogger("movierec.serving")
T = TypeVar("T")

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
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, time REAL NOT NULL, space BLOB);
"""

# The request log lives in a file of its own beside the database (see log_file_of): it takes
# a row per request, and sharing the file made every feedback write queue behind the log's
# batches and checkpoints, and every read search a write-ahead log full of log pages.
LOG_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS request_logs_time ON request_logs (time);
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, time REAL NOT NULL, space BLOB);
"""


def log_file_of(database: Path) -> Path:
    """The request log's file for the service database ``database``: ``NAME-requests.EXT`` beside it."""
    database = Path(database)
    return database.with_name(f"{database.stem}-requests{database.suffix or '.sqlite'}")


# columns added after the first release: (table, column, declaration); added to older files on open
MIGRATIONS = (("feedback", "received", "REAL"), ("bundle_pointer", "base", "TEXT"))
POST_MIGRATION = "CREATE INDEX IF NOT EXISTS feedback_received ON feedback (user_id, received);"


def move_legacy_request_log(database: Path, timeout: float) -> int:
    """Move request-log rows that older versions kept in the database into the log's own file.

    One transaction: the rows are copied into :func:`log_file_of` ``(database)`` (which
    must exist, see :func:`prepare`) and the old table is dropped, so retention and the
    quality gauges see every row again and none is left behind or read twice. Returns how
    many rows moved (0, and no write, when there is no old table).

    Raises:
        StoreUnavailable: either file cannot be read or written now.
    """
    database = Path(database)
    if not database.exists():
        return 0
    try:
        conn = _open(database, timeout)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_logs'")
            if found.fetchone() is None:
                return 0
            conn.execute("ATTACH DATABASE ? AS log", (str(log_file_of(database)),))
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = conn.execute("INSERT OR IGNORE INTO log.request_logs SELECT * FROM main.request_logs").rowcount
                conn.execute("DROP TABLE main.request_logs")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("moved %d request-log rows from %s into %s", moved, database, log_file_of(database))
            return moved
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(_explain(exc, database, timeout)) from exc


class StoreUnavailable(MovierecError):
    """The service database cannot serve this request now (busy, full, read-only, removed)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def identity(path: Path) -> str:
    """``device:inode`` of the file at ``path``; raises FileNotFoundError when it is gone."""
    stat = os.stat(path)
    return f"{stat.st_dev}:{stat.st_ino}"


def _explain(exc: sqlite3.Error, path: Path, timeout: float) -> str:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"the service database {path} stayed locked by another writer for over {timeout:g} s; retry shortly"
    if "full" in lowered:
        return f"the disk holding the service database {path} is full ({text}); free space, then retry"
    if "readonly" in lowered or "read-only" in lowered:
        return f"the service database {path} is read-only ({text}); make it and its folder writable"
    if "unable to open" in lowered:
        return f"the service database {path} cannot be opened ({text}); check the path and its folder"
    return f"the service database {path} failed: {text}"


def _open(path: Path, timeout: float, read_only: bool = False) -> sqlite3.Connection:
    if read_only:  # never creates the file: a reader opened after a deletion fails, it does not hide it
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False, isolation_level=None)
    return sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)


PROBE_BYTES = 64 * 1024  # what a write probe stores (and deletes): enough to need fresh pages


def _probe(conn: sqlite3.Connection) -> None:
    """Prove the file takes writes that need new space: store a 64 KB blob (committed)."""
    conn.execute("INSERT OR REPLACE INTO write_probe VALUES (1, ?, zeroblob(?))", (time.time(), PROBE_BYTES))


def _unprobe(conn: sqlite3.Connection) -> None:
    """Delete what :func:`_probe` stored."""
    conn.execute("DELETE FROM write_probe")


def prepare(path: Path, timeout: float, schema: str = SCHEMA) -> str:
    """Create (or upgrade) the database (``schema``: :data:`SCHEMA` or :data:`LOG_SCHEMA`),
    prove it writable, and return its identity.

    Raises:
        StoreUnavailable: the file cannot be created, opened or written, with the reason.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the folder of the service database {path}: {exc}") from exc
    try:
        conn = _open(path, timeout)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(schema)
            if schema == SCHEMA:
                columns = {
                    table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")} for table, _, _ in MIGRATIONS
                }
                for table, column, declaration in MIGRATIONS:
                    if column not in columns[table]:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                conn.executescript(POST_MIGRATION)
            _probe(conn)
            _unprobe(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(_explain(exc, path, timeout)) from exc
    return identity(path)


class Database:
    """One worker's access to the service database (see the module docstring).

    Args:
        path: the SQLite file.
        timeout: the longest any request waits for the database, in seconds.
        min_free_bytes: below this much free disk space the service reports not ready.
        expected_identity: the file's identity when the service started (``movierec serve``
            passes it to every worker); empty: the identity found when this object opens it.
        schema: the tables the file holds (:data:`SCHEMA`, or :data:`LOG_SCHEMA` for the request log).
    """

    def __init__(
        self, path: Path, timeout: float, min_free_bytes: int, expected_identity: str = "", schema: str = SCHEMA
    ):
        self.path = Path(path)
        self.timeout = timeout
        self.min_free_bytes = min_free_bytes
        found = prepare(self.path, timeout, schema) if not expected_identity else self._found_identity()
        self.identity = expected_identity or found
        self._writer = _open(self.path, timeout)
        self._writer.execute("PRAGMA synchronous=NORMAL")
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.write_error: str | None = None  # the last write's failure, until a write succeeds

    def _found_identity(self) -> str | None:
        try:
            return identity(self.path)
        except FileNotFoundError:
            return None

    def check_file(self) -> None:
        """Raise when the file is not the one the service started with (deleted or replaced)."""
        if self._found_identity() != self.identity:
            raise StoreUnavailable(
                f"the service database {self.path} was deleted or replaced while the service ran; "
                "writes are refused by every worker so no event is lost: restart the service"
            )

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _open(self.path, self.timeout, read_only=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query, on this thread's read connection (never waits on a writer)."""
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(_explain(exc, self.path, self.timeout)) from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._write_lock.acquire(timeout=self.timeout):
            raise StoreUnavailable(
                f"the service database {self.path} is busy: a write waited over {self.timeout:g} s; retry shortly"
            )
        try:
            yield
        finally:
            self._write_lock.release()

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one immediate transaction on the writer connection, bounded in time.

        Raises:
            StoreUnavailable: the database is busy beyond the timeout, full, read-only or
                was removed; the transaction is rolled back and nothing is half-written.
        """
        with self._locked():
            self.check_file()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                reason = _explain(exc, self.path, self.timeout)
                if "locked" not in reason:
                    self.write_error = reason
                log.error("%s", reason)
                raise StoreUnavailable(reason) from exc
        self.write_error = None
        return result

    def health(self) -> str | None:
        """Why the database cannot take writes now, or None when it can.

        Checks that the file is the one the service started with, that the disk has
        ``min_free_bytes`` free, and, after a failed write, that a probe write succeeds
        again (so the service becomes ready by itself once space is freed).
        """
        try:
            self.check_file()
        except StoreUnavailable as exc:
            return exc.reason
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            return f"cannot read the free space of {self.path.parent}: {exc}"
        if free < self.min_free_bytes:
            return (
                f"only {free} bytes free on the disk of the service database {self.path} "
                f"(MOVIEREC_MIN_FREE_DISK_BYTES is {self.min_free_bytes})"
            )
        if self.write_error is not None:
            try:
                self.write(_probe)
                self.write(_unprobe)
            except StoreUnavailable as exc:
                return exc.reason
        return None

    def close(self) -> None:
        """Close every connection of this object."""
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()


def open_database(path: Path, settings: Any = None, log: bool = False) -> Database:
    """A :class:`Database` configured by the service settings (default: from the environment).

    ``log``: ``path`` is the request log's file (:func:`log_file_of`), not the service database.
    """
    from movierec.serving.settings import Settings

    settings = settings or Settings()
    return Database(
        path,
        timeout=settings.database_timeout_seconds,
        min_free_bytes=settings.min_free_disk_bytes,
        expected_identity=settings.request_log_identity if log else settings.database_identity,
        schema=LOG_SCHEMA if log else SCHEMA,
    )

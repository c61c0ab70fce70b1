"""Both storage backends behind one test helper: a SQLite file, or a fresh database on a real PostgreSQL server.

Shared by the storage tests; imported by name (``from storage_backends import ...``). The
``backend`` fixture (tests/serving/conftest.py) runs a test once per backend; every
:meth:`Backend.open` opens another storage on the same database, standing in for another
worker (SQLite) or another replica (PostgreSQL).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postgres_server import PostgresServer

from movierec.serving.settings import Settings
from movierec.serving.storage import Storage


@dataclass
class Backend:
    """One database of one backend, and the storages a test opened on it (closed at teardown).

    ``location``: the SQLite file, or the PostgreSQL URL; ``server``/``name``: the PostgreSQL
    server and database (None for SQLite).
    """

    kind: str
    location: str | Path
    tmp: Path
    server: PostgresServer | None = None
    name: str | None = None
    opened: list[Storage] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        """Service settings for this database (``database_timeout_seconds`` 0.5 unless overridden)."""
        values: dict[str, Any] = {"database_timeout_seconds": 0.5, "database_path": self.tmp / "svc.sqlite"}
        if self.kind == "postgresql":
            values["database_url"] = str(self.location)
        return Settings(**{**values, **overrides})

    def open(self, settle_seconds: float = 0.0, **overrides: Any) -> Storage:
        """Another storage on this database (``settle_seconds``: PostgreSQL's log settling time)."""
        settings = self.settings(**overrides)
        if self.kind == "postgresql":
            from movierec.serving.postgres_storage import PostgresStorage

            storage: Storage = PostgresStorage(str(self.location), settings, settle_seconds=settle_seconds)
        else:
            from movierec.serving.sqlite_storage import SqliteStorage

            storage = SqliteStorage(Path(self.location), settings)
        self.opened.append(storage)
        return storage

    def count(self, table: str) -> int:
        """Rows in ``table``, counted by a connection of the test's own."""
        if self.kind == "postgresql":
            return int(self.server.admin(f"SELECT COUNT(*) FROM {table}", self.name)[0][0])
        from movierec.serving.database import log_file_of

        path = log_file_of(Path(self.location)) if table == "request_logs" else Path(self.location)
        with contextlib.closing(sqlite3.connect(str(path))) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    @contextlib.contextmanager
    def writer_stuck(self) -> Iterator[None]:
        """Another writer holds the feedback table's write lock (reads stay allowed) until the block ends."""
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(str(self.location), autocommit=True) as conn:
                conn.execute("BEGIN")
                conn.execute("LOCK TABLE feedback IN EXCLUSIVE MODE")  # blocks inserts, not selects
                try:
                    yield
                finally:
                    conn.execute("ROLLBACK")
            return
        holder = sqlite3.connect(str(self.location), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    def close(self) -> None:
        """Close every storage the test opened (in threads: a PostgreSQL listener takes a moment)."""
        threads = [threading.Thread(target=storage.close) for storage in self.opened]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        self.opened.clear()

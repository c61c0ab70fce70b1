"""The PostgreSQL backend's own guarantees, against a real server: an unreachable or read-only
database is a clear, bounded 503 and a /ready reason until it recovers; with
``MOVIEREC_FEEDBACK_SIGNAL=notify`` a worker queries only after feedback changed, and never
vouches for its memo while it cannot hear notifications; the schema migrates once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from postgres_server import PostgresServer
from processes import free_port, wait_until

from movierec.serving.notify_clock import NotifyClock
from movierec.serving.postgres import MIGRATIONS, connect_kwargs, prepare
from movierec.serving.postgres_storage import PostgresStorage
from movierec.serving.settings import Settings
from movierec.serving.storage import StoreUnavailable
from movierec.serving.store import EventStore


@pytest.fixture()
def database(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """``(name, url)`` of a fresh database; connections are allowed again after the test."""
    name, url = postgres.new_database()
    yield name, url
    postgres.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def _cut_off(server: PostgresServer, name: str, allow: bool = False) -> None:
    """Refuse new connections to ``name`` and end the open ones, as a server gone away would."""
    server.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allow).lower()}")
    if not allow:
        server.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def test_an_unreachable_database_is_a_bounded_503_reason_until_it_returns(
    postgres: PostgresServer, database: tuple[str, str]
) -> None:
    name, url = database
    settings = Settings(database_url=url, database_timeout_seconds=0.5)
    storage = PostgresStorage(url, settings)
    store = EventStore(storage, settings)
    try:
        store.add(1, 10, None, "view", 1)
        assert storage.health() is None
        _cut_off(postgres, name)
        started = time.perf_counter()
        reason = storage.health()
        assert reason is not None and "postgresql://***@127.0.0.1" in reason, reason
        with pytest.raises(StoreUnavailable):
            store.add(1, 11, None, "view", 2)
        with pytest.raises(StoreUnavailable):
            storage.recent_items(1, 10)
        assert time.perf_counter() - started < 10  # each call bounded by the timeout and libpq's connect limit
        _cut_off(postgres, name, allow=True)
        assert wait_until(lambda: storage.health() is None, 30, 0.2), storage.health()
        assert store.add(1, 12, None, "view", 3) > 0 and storage.recent_items(1, 10) == [10, 12]
    finally:
        store.close()
        storage.close()


def test_a_read_only_database_turns_unready_with_the_reason_until_writes_work(
    postgres: PostgresServer, database: tuple[str, str]
) -> None:
    name, url = database
    settings = Settings(database_url=url, database_timeout_seconds=0.5)
    storage = PostgresStorage(url, settings)
    store = EventStore(storage, settings)
    try:
        postgres.admin(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        postgres.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.add(2, 20, None, "view", 1)
        assert "read-only" in (storage.health() or "")
        assert storage.recent_items(2, 10) == []  # reads still answer
        postgres.admin(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        postgres.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        assert wait_until(lambda: storage.health() is None, 30, 0.2), storage.health()  # the probe write worked
        assert store.add(2, 21, None, "view", 2) > 0
    finally:
        store.close()
        storage.close()


def test_the_change_signal_answers_unknown_while_it_cannot_hear_notifications(
    postgres: PostgresServer, database: tuple[str, str]
) -> None:
    name, url = database
    clock = NotifyClock(url, connect_kwargs(0.5), heartbeat=0.2)
    try:
        assert wait_until(lambda: clock.now() is not None, 10, 0.01)
        before = clock.now()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("NOTIFY movierec_feedback, '1'")
        assert wait_until(lambda: (clock.now() or 0) > before, 10, 0.001)  # counted
        _cut_off(postgres, name)
        assert wait_until(lambda: not clock.listening, 10, 0.01)
        assert clock.now() is None  # nobody listens: every read goes to the database
        time.sleep(0.5)
        assert clock.now() is None  # and stays so while the server refuses connections
        moved = clock.now()
        _cut_off(postgres, name, allow=True)
        assert wait_until(lambda: clock.now() is not None, 10, 0.01)
        assert clock.now() != moved and clock.now() > before  # notifications may have been missed: read again
    finally:
        clock.close()


def test_notify_mode_reads_the_database_only_after_feedback_changed(postgres: PostgresServer) -> None:
    _, url = postgres.new_database()
    settings = Settings(database_url=url, feedback_signal="notify")
    one, two = (EventStore(PostgresStorage(url, settings), settings) for _ in range(2))
    reads: list[int] = []
    db = one.storage.db
    read = db.read
    db.read = lambda sql, args=(), pool=None: reads.append(1) or read(sql, args, pool)  # type: ignore[method-assign]
    try:
        assert wait_until(lambda: one.storage.changes.now() is not None, 10, 0.01)
        assert one.items_of(9) == [] and one.items_of(9) == [] and one.items_of(9) == []
        assert len(reads) == 1  # remembered: no query while nothing changed
        two.add(9, 90, None, "view", 1)  # another replica writes: its NOTIFY reaches this one
        assert wait_until(lambda: one.items_of(9) == [90], 5, 0.001)
        settled = len(reads)
        assert one.items_of(9) == [90] and one.items_of(9) == [90] and len(reads) == settled
        one.add(9, 91, None, "view", 2)  # this worker's own write: read again at once
        assert one.items_of(9) == [90, 91]
    finally:
        for store in (one, two):
            store.storage.close()


def test_the_schema_is_migrated_once_by_workers_starting_together(postgres: PostgresServer) -> None:
    name, url = postgres.new_database()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            PostgresStorage(url, Settings(database_url=url, feedback_signal="query")).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    versions = postgres.admin("SELECT version FROM movierec_schema ORDER BY version", name)
    assert [v[0] for v in versions] == list(range(1, len(MIGRATIONS) + 1))
    tables = {r[0] for r in postgres.admin("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", name)}
    assert {"feedback", "bundle_pointer", "request_logs", "write_probe", "movierec_schema"} <= tables


def test_an_unreachable_server_at_start_is_one_line_without_the_password() -> None:
    url = f"postgresql://movierec:s3cret-pw@127.0.0.1:{free_port()}/movierec"
    with pytest.raises(StoreUnavailable, match="cannot be reached") as refused:
        prepare(url, 0.5)
    assert "s3cret-pw" not in refused.value.reason and "postgresql://***@127.0.0.1" in refused.value.reason
    assert "\n" not in refused.value.reason
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        PostgresStorage(url, Settings(database_url=url, database_timeout_seconds=0.5))

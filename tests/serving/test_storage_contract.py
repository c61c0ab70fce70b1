"""The storage contract, on both backends: SQLite files and a real PostgreSQL server.

Each test runs once per backend (the ``backend`` fixture). Two storages opened on one
database stand in for two workers (SQLite) or two replicas (PostgreSQL).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from storage_backends import Backend

from movierec.serving.storage import LOG_COLUMNS, Pointer, RateLimited, StoreUnavailable
from movierec.serving.store import BundlePointer, EventStore, RequestLog


def _row(request_id: str, at: float, user: int | None = 1) -> tuple:
    return (request_id, at, user, "retrieval", "v", "[4, 5]", "[0.5, 0.25]", 1.5, 0, None)


def test_serving_reads_the_most_recent_feedback_in_timestamp_order(backend: Backend) -> None:
    store = EventStore(backend.open(), backend.settings(feedback_per_user=3))
    for n, item in enumerate([11, 12, 13, 14, 15]):
        assert store.add(7, item, None, "view", 1_000 + n) > 0
    store.add(7, 10, 4.5, "rating", 500)  # an older timestamp posted late: recent by arrival
    assert store.items_of(7) == [10, 14, 15]
    assert store.items_of(8) == []
    events = store.all_events()
    assert len(events) == 6 and events[0] == (7, 10, 4.5, "rating", 500)  # every event kept, by timestamp


def test_feedback_written_by_one_is_read_by_the_other(backend: Backend) -> None:
    one, two = EventStore(backend.open(), backend.settings()), EventStore(backend.open(), backend.settings())
    assert one.items_of(5) == [] and two.items_of(5) == []  # both remember "nothing" now
    two.add(5, 42, None, "view", 1)
    assert one.items_of(5) == [42]  # the very next read (SQLite: the shared counter moved; PostgreSQL: a query)
    one.add(5, 43, 4.0, "rating", 2)
    assert one.items_of(5) == [42, 43] and two.items_of(5) == [42, 43]
    got = one.items_of(5)
    got.append(99)  # a caller changing its list changes nothing remembered
    assert one.items_of(5) == [42, 43]


def test_the_rate_limit_holds_across_writers_posting_at_once(backend: Backend) -> None:
    settings = backend.settings(feedback_rate_limit=10, database_timeout_seconds=5.0)
    stores = [EventStore(backend.open(database_timeout_seconds=5.0), settings) for _ in range(2)]

    def post(n: int) -> str:
        try:
            stores[n % 2].add(77, 1_000 + n, None, "view", n)
            return "stored"
        except RateLimited as exc:
            assert "user 77" in str(exc) and 1 <= exc.retry_after <= 60
            return "limited"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(post, range(30)))
    assert outcomes.count("stored") == 10 and outcomes.count("limited") == 20
    assert backend.count("feedback") == 10
    assert EventStore(stores[0].storage, settings).add(78, 1, None, "view", 1) > 0  # another user is not limited


def test_no_event_is_lost_under_concurrent_writes(backend: Backend) -> None:
    settings = backend.settings(database_timeout_seconds=5.0)
    stores = [EventStore(backend.open(database_timeout_seconds=5.0), settings) for _ in range(2)]

    def post(n: int) -> int:
        return stores[n % 2].add(n % 40, n, None, "click", n)

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, range(200)))
    assert len(set(ids)) == 200 and backend.count("feedback") == 200
    assert sorted(e[1] for e in stores[1].all_events()) == list(range(200))


def test_a_stuck_writer_gives_a_quick_503_reason_and_reads_do_not_wait(backend: Backend) -> None:
    store = EventStore(backend.open(), backend.settings())
    store.add(3, 30, None, "view", 1)
    with backend.writer_stuck():
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="locked") as refused:
            store.add(3, 31, None, "view", 2)
        waited = time.perf_counter() - started
        started = time.perf_counter()
        assert store.storage.recent_items(3, 10) == [30]  # a read, while the writer is stuck
        read_seconds = time.perf_counter() - started
    assert 0.3 <= waited < 2.0, waited  # bounded by the 0.5 s timeout
    assert read_seconds < 0.3, read_seconds
    if backend.kind == "postgresql":  # the server is named, without credentials
        assert f"postgresql://***@127.0.0.1:{backend.server.port}/{backend.name}" in refused.value.reason
    assert store.storage.health() is None  # busy is not broken
    assert store.add(3, 31, None, "view", 2) > 0  # the lock released, the write goes through


def test_the_reload_pointer_is_shared(backend: Backend) -> None:
    one, two = BundlePointer(backend.open()), BundlePointer(backend.open())
    assert two.get() is None
    one.set("models:/movierec/3", "v3", "v1")
    assert two.get() == Pointer("models:/movierec/3", "v3", "v1")
    two.set("/shared/bundles/v4", "v4")
    assert one.get() == Pointer("/shared/bundles/v4", "v4", None)
    one.clear()
    assert two.get() is None


def test_the_request_log_keeps_rows_once_by_age_and_by_count(backend: Backend) -> None:
    storage = backend.open()
    now = time.time()
    rows = [_row(f"old{n}", now - 3 * 86400 + n) for n in range(5)]
    rows += [_row(f"new{n:02d}", now - 100 + n, user=None if n % 2 else n) for n in range(25)]
    storage.write_logs(rows)
    storage.write_logs(rows[-3:])  # a batch written again (a retry after a lost reply) adds nothing
    assert backend.count("request_logs") == 30
    assert storage.read_logs()[5] == dict(zip(LOG_COLUMNS, _row("new00", now - 100, user=0)))
    assert storage.prune_logs(now - 86400, 10) == 20
    assert [r["request_id"] for r in storage.read_logs()] == [f"new{n:02d}" for n in range(15, 25)]


def test_log_rows_are_read_past_a_cursor_in_order(backend: Backend) -> None:
    storage = backend.open()
    assert storage.last_log_cursor() == 0 and storage.logs_after(0, 10) == []
    now = time.time()
    storage.write_logs([_row(f"r{n}", now + n, user=n) for n in range(5)])
    first = storage.logs_after(0, 3)
    assert [r[2] for r in first] == [0, 1, 2] and first[0][3:] == ("retrieval", "[4, 5]")
    rest = storage.logs_after(first[-1][0], 10)
    assert [r[2] for r in rest] == [3, 4] and rest[-1][0] == storage.last_log_cursor()


def test_feedback_is_read_past_an_id_up_to_a_time(backend: Backend) -> None:
    storage = backend.open()
    store = EventStore(storage, backend.settings())
    ids = [store.add(1, item, None, "click", 1) for item in (5, 6, 7)]
    assert storage.last_feedback_id() == ids[-1]
    rows = storage.feedback_after(ids[0], time.time() + 1, 10)
    assert [(r[0], r[2], r[3]) for r in rows] == [(ids[1], 1, 6), (ids[2], 1, 7)]
    assert abs(rows[0][1] - time.time()) < 60  # received: seconds since the epoch
    assert storage.feedback_after(0, time.time() - 3600, 10) == []  # none received an hour ago


def test_request_log_writer_stores_every_row_through_the_storage(backend: Backend) -> None:
    storage = backend.open()
    log = RequestLog(storage, settings=backend.settings())
    try:
        for n in range(50):
            log.log(
                f"q{n}", n, "recommendations", "v", [n, n + 1], [0.5, 0.25], 2.0, n == 3, "cold" if n == 3 else None
            )
        log.flush()
    finally:
        log.close()
    rows = storage.read_logs()
    assert len(rows) == 50 and log.dropped == 0
    assert rows[3]["is_fallback"] == 1 and rows[3]["fallback_reason"] == "cold" and rows[3]["item_ids"] == "[3, 4]"

"""The service database never hangs a request and never loses an event silently (issue 9, finding 5).

Each test runs its own app on the tiny bundle with its own database file, and provokes the
failure for real: a second SQLite connection holding the write lock, SQLite's own "disk
full" (a page limit on the writer), the file deleted under the running service, a file
the service may not write.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bundle_fixture import TinyProject, make_settings, metric_value
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.database import LOG_SCHEMA, Database, StoreUnavailable, log_file_of, prepare
from movierec.serving.store import EventStore, read_request_logs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fresh(tiny_project: TinyProject, tmp_path: Path) -> Iterator[TestClient]:
    """A client of an app with its own database and a short (0.5 s) database timeout."""
    settings = make_settings(tiny_project, tmp_path / "svc.sqlite", database_timeout_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        yield client


def _known_user(client: TestClient) -> int:
    return int(next(iter(client.app.state.service.recommender.histories)))


def _an_item(client: TestClient) -> int:
    return int(client.app.state.service.recommender.catalogue.item_id[0])


def test_a_locked_database_gives_a_quick_503_and_reads_do_not_wait(fresh: TestClient) -> None:
    # Before: one lock guarded reads and writes and SQLite waited 30 s, so feedback failed with
    # a 500 after 30 s and a recommendation on the same worker waited behind it.
    path = fresh.app.state.service.storage.db.path
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the write lock
    user, item = _known_user(fresh), _an_item(fresh)
    replies: dict[str, object] = {}

    def post() -> None:
        started = time.perf_counter()
        replies["feedback"] = fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"})
        replies["feedback_seconds"] = time.perf_counter() - started

    try:
        writer = threading.Thread(target=post)
        writer.start()
        time.sleep(0.1)  # the feedback write is now waiting for the lock
        started = time.perf_counter()
        read = fresh.post("/api/v1/recommendations", json={"user_id": user, "k": 5})
        read_seconds = time.perf_counter() - started
        writer.join(timeout=10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert read.status_code == 200 and read_seconds < 0.4, (read.status_code, read_seconds)
    feedback = replies["feedback"]
    assert feedback.status_code == 503, feedback.text  # type: ignore[attr-defined]
    assert "locked" in feedback.json()["detail"] and feedback.headers["retry-after"] == "1"  # type: ignore[attr-defined]
    assert replies["feedback_seconds"] < 2.0  # bounded by the 0.5 s timeout, not 30 s
    assert (
        metric_value(fresh.get("/metrics").text, "recommendation_requests_total", endpoint="feedback", status="503")
        >= 1
    )
    # the lock released, the same request is stored
    again = fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"})
    assert again.status_code == 201


def test_a_full_disk_is_a_503_and_makes_ready_say_why_until_space_returns(fresh: TestClient) -> None:
    db = fresh.app.state.service.storage.db
    db._writer.execute("VACUUM")  # no free pages left: the next growth needs a new page
    pages = db._writer.execute("PRAGMA page_count").fetchone()[0]
    db._writer.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL from here on
    user, item = _known_user(fresh), _an_item(fresh)
    statuses = []
    for n in range(400):  # until a new page is needed
        r = fresh.post("/api/v1/feedback", json={"user_id": 10_000 + n, "item_id": item, "event": "view"})
        statuses.append(r.status_code)
        if r.status_code != 201:
            break
    assert statuses[-1] == 503 and "full" in r.json()["detail"], (statuses[-3:], r.text)
    ready = fresh.get("/ready")
    assert ready.status_code == 503 and "full" in ready.json()["reason"]
    # reads still work while writes cannot
    assert fresh.post("/api/v1/recommendations", json={"user_id": user, "k": 5}).status_code == 200
    db._writer.execute("PRAGMA max_page_count = 1073741823")  # space freed
    assert fresh.get("/ready").status_code == 200  # the probe write succeeded
    assert fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"}).status_code == 201


def test_too_little_free_disk_space_makes_ready_503(tiny_project: TinyProject, tmp_path: Path) -> None:
    settings = make_settings(tiny_project, tmp_path / "svc.sqlite", min_free_disk_bytes=2**62)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503 and "bytes free" in ready.json()["reason"], ready.text


def test_a_database_deleted_while_running_is_refused_by_every_worker(fresh: TestClient) -> None:
    # Before: the worker kept writing into the unlinked file (those events were lost), and a
    # restarted worker created a new file, so workers split between two databases.
    state = fresh.app.state.service
    path = state.storage.db.path
    user, item = _known_user(fresh), _an_item(fresh)
    assert fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"}).status_code == 201
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    r = fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"})
    assert r.status_code == 503 and "deleted or replaced" in r.json()["detail"], r.text
    ready = fresh.get("/ready")
    assert ready.status_code == 503 and "deleted or replaced" in ready.json()["reason"]
    assert fresh.post("/api/v1/recommendations", json={"user_id": user, "k": 3}).status_code in (200, 503)
    assert not path.exists()  # no reader or writer quietly created a new, empty file
    # a worker started later with the service's identity refuses the new file alike
    later = Database(path, timeout=0.5, min_free_bytes=0, expected_identity=state.storage.db.identity)
    try:
        with pytest.raises(StoreUnavailable, match="deleted or replaced"):
            later.write(lambda conn: conn.execute("DELETE FROM write_probe"))
        assert later.health() is not None
    finally:
        later.close()


def test_feedback_never_waits_on_the_request_log(fresh: TestClient) -> None:
    # Before: the request log shared the database, so every feedback write queued behind the
    # log writer's batches (and their checkpoints); under load that was feedback's p99 of up
    # to 0.7 s and its rare 503s. The log now has a file of its own.
    state = fresh.app.state.service
    log_db = state.storage.log_db
    assert log_db.path == log_file_of(state.storage.db.path) != state.storage.db.path
    holder = sqlite3.connect(str(log_db.path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the request log's writer is stuck holding its lock
    try:
        user, item = _known_user(fresh), _an_item(fresh)
        started = time.perf_counter()
        r = fresh.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"})
        assert r.status_code == 201 and time.perf_counter() - started < 0.4, r.text
        assert fresh.post("/api/v1/recommendations", json={"user_id": user, "k": 3}).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_request_log_deleted_while_running_makes_ready_say_so(fresh: TestClient) -> None:
    state = fresh.app.state.service
    path = state.storage.log_db.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ready = fresh.get("/ready")
    assert ready.status_code == 503 and str(path) in ready.json()["reason"], ready.text
    assert not path.exists()
    # a worker started later with the service's identity for the log refuses a new file alike
    prepare(path, 0.5, LOG_SCHEMA)  # someone recreates it
    later = Database(path, 0.5, 0, expected_identity=state.storage.log_db.identity, schema=LOG_SCHEMA)
    try:
        with pytest.raises(StoreUnavailable, match="deleted or replaced"):
            later.write(lambda conn: conn.execute("DELETE FROM write_probe"))
    finally:
        later.close()


def test_rows_logged_before_the_log_had_its_own_file_move_there_at_start(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    database = tmp_path / "old.sqlite"
    conn = sqlite3.connect(str(database))
    conn.executescript(LOG_SCHEMA)  # what older versions kept in the database itself
    stale = time.time() - 40 * 86400  # past the 30 days of retention
    conn.execute(
        "INSERT INTO request_logs VALUES ('stale', ?, 1, 'retrieval', 'v', '[4]', '[0.5]', 1.0, 0, NULL)", (stale,)
    )
    conn.execute(
        "INSERT INTO request_logs VALUES ('old', ?, 1, 'retrieval', 'v', '[5]', '[0.5]', 1.0, 0, NULL)",
        (time.time() - 60,),
    )
    conn.commit()
    conn.close()
    assert [r["request_id"] for r in read_request_logs(database)] == ["stale", "old"]  # read before any start
    with TestClient(create_app(make_settings(tiny_project, database))) as client:
        state = client.app.state.service
        assert client.post("/api/v1/retrieval", json={"user_id": _known_user(client), "k": 2}).status_code == 200
        state.log.flush()
        with sqlite3.connect(str(database)) as main:
            assert main.execute("SELECT name FROM sqlite_master WHERE name = 'request_logs'").fetchone() is None
        state.log.prune()  # retention reaches the moved rows (the writer may have run it already)
    rows = read_request_logs(database)
    assert [r["request_id"] for r in rows][:1] == ["old"] and len(rows) == 2 and rows[0]["item_ids"] == [5]


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only for this process: ``chmod`` for a normal user; root writes
    such files anyway, so for root the file is made immutable (``chattr +i``) instead."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_is_one_clear_error_at_start(tmp_path: Path) -> None:
    # Before: a raw sqlite3 traceback from inside each worker's start-up.
    path = tmp_path / "svc.sqlite"
    prepare(path, 0.5)
    with _read_only(path), pytest.raises(StoreUnavailable, match="read-only") as refused:
        prepare(path, 0.5)
    assert str(path) in str(refused.value)


def test_serve_refuses_an_unusable_database_path_in_one_line(tiny_project: TinyProject, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "MOVIEREC_BUNDLE_DIR": str(tiny_project.checkpoints),
        "MOVIEREC_DATABASE_PATH": str(tmp_path),  # a folder, not a file
    }
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "service database" in done.stderr, done.stderr[-2000:]


def test_feedback_items_read_again_whenever_any_worker_wrote(tmp_path: Path) -> None:
    """Two stores on one file stand in for two workers; each remembers what it read until the
    shared feedback counter moves, and asks the database nothing else per request."""
    path = tmp_path / "events.sqlite"
    one, two = EventStore(path), EventStore(path)
    queries: list[str] = []
    db = one.storage.db
    read = db.read
    db.read = lambda sql, args=(): queries.append(sql.split()[0]) or read(sql, args)  # type: ignore[method-assign]
    try:
        assert one.items_of(5) == [] and one.items_of(5) == []
        assert queries == ["SELECT"]  # the second answer was remembered, without a query
        two.add(5, 42, None, "view", 1)  # another worker writes
        assert one.items_of(5) == [42]
        one.add(5, 43, 4.0, "rating", 2)  # this worker writes (its writer is another connection)
        assert one.items_of(5) == [42, 43] and two.items_of(5) == [42, 43]
        got = one.items_of(5)
        got.append(99)  # a caller changing its list changes nothing remembered
        assert one.items_of(5) == [42, 43]
    finally:
        one.close()
        two.close()

"""Limits in settings: feedback cap and rate, the time budget, request-log retention and
back-pressure, and a dead worker's gauge (issue 9, findings 1, 4, 6 and 8)."""

from __future__ import annotations

import os
import queue as queues
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_fixture import TinyProject, make_settings, metric_value
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.database import log_file_of
from movierec.serving.settings import Settings
from movierec.serving.store import EventStore, RequestLog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def limited(tiny_project: TinyProject, tmp_path: Path) -> Iterator[TestClient]:
    """An app with small feedback limits: 5 events kept per user, 8 per minute."""
    settings = make_settings(tiny_project, tmp_path / "svc.sqlite", feedback_per_user=5, feedback_rate_limit=8)
    with TestClient(create_app(settings)) as client:
        yield client


def test_feedback_is_rate_limited_per_user_with_retry_after(limited: TestClient) -> None:
    items = limited.app.state.service.recommender.catalogue.item_id[:10].tolist()
    statuses = [
        limited.post("/api/v1/feedback", json={"user_id": 42, "item_id": int(i), "event": "view"}).status_code
        for i in items[:9]
    ]
    assert statuses == [201] * 8 + [429], statuses
    refused = limited.post("/api/v1/feedback", json={"user_id": 42, "item_id": int(items[9]), "event": "view"})
    assert refused.status_code == 429 and "user 42" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # another user is not affected, and nothing of the refused events was stored
    assert (
        limited.post("/api/v1/feedback", json={"user_id": 43, "item_id": int(items[0]), "event": "view"}).status_code
        == 201
    )
    assert len(limited.app.state.service.events.all_events()) == 9
    text = limited.get("/metrics").text
    assert metric_value(text, "recommendation_requests_total", endpoint="feedback", status="429") >= 2


def test_serving_reads_only_the_most_recent_feedback(tmp_path: Path) -> None:
    # Before: every event of the user was read on every request (1.3 s at 300K events) and
    # 1,682 views emptied the user's recommendations.
    settings = Settings(database_path=tmp_path / "e.sqlite", feedback_per_user=3, feedback_rate_limit=1000)
    store = EventStore(settings.database_path, settings)
    try:
        for n, item in enumerate([11, 12, 13, 14, 15]):
            store.add(7, item, None, "view", 1_000 + n)
        store.add(7, 10, None, "view", 500)  # an older event posted late: recent by arrival
        assert store.items_of(7) == [10, 14, 15]  # the three latest posted, in timestamp order
        assert len(store.all_events()) == 6  # every event is kept for retraining
    finally:
        store.close()


def test_a_flood_of_feedback_never_empties_the_recommendations(tiny_project: TinyProject, tmp_path: Path) -> None:
    settings = make_settings(tiny_project, tmp_path / "svc.sqlite", feedback_per_user=20, feedback_rate_limit=10_000)
    with TestClient(create_app(settings)) as client:
        rec = client.app.state.service.recommender
        user = int(next(iter(rec.histories)))
        for item in rec.catalogue.item_id.tolist():  # the user "viewed" the whole catalogue
            assert (
                client.post(
                    "/api/v1/feedback", json={"user_id": user, "item_id": int(item), "event": "view"}
                ).status_code
                == 201
            )
        r = client.post("/api/v1/recommendations", json={"user_id": user, "k": 10})
    assert r.status_code == 200 and len(r.json()["items"]) == 10, r.text


def test_a_request_over_its_time_budget_is_a_counted_503(tiny_project: TinyProject, tmp_path: Path) -> None:
    settings = make_settings(tiny_project, tmp_path / "svc.sqlite", request_budget_seconds=1e-9)
    with TestClient(create_app(settings)) as client:
        user = int(next(iter(client.app.state.service.recommender.histories)))
        r = client.post("/api/v1/recommendations", json={"user_id": user, "k": 10})
        text = client.get("/metrics").text
    assert r.status_code == 503 and "budget" in r.json()["detail"] and "MOVIEREC_REQUEST_BUDGET_SECONDS" in r.text
    assert metric_value(text, "recommendation_requests_total", endpoint="recommendations", status="503") >= 1


def _rows(path: Path) -> list[str]:
    conn = sqlite3.connect(str(log_file_of(path)))
    try:
        return [r[0] for r in conn.execute("SELECT request_id FROM request_logs ORDER BY time")]
    finally:
        conn.close()


def test_the_request_log_keeps_rows_by_age_and_by_count(tmp_path: Path) -> None:
    settings = Settings(database_path=tmp_path / "log.sqlite", request_log_max_rows=10, request_log_max_age_days=1.0)
    log = RequestLog(settings.database_path, settings=settings)
    try:
        now = time.time()
        rows = [(f"old{n}", now - 3 * 86400 + n, 1, "retrieval", "v", "[]", "[]", 1.0, 0, None) for n in range(5)]
        rows += [(f"new{n:02d}", now - 100 + n, 1, "retrieval", "v", "[]", "[]", 1.0, 0, None) for n in range(25)]
        log.storage.write_logs(rows)
        deleted = log.prune(now)
    finally:
        log.close()
    assert deleted == 20
    assert _rows(settings.database_path) == [f"new{n:02d}" for n in range(15, 25)]


def test_a_full_log_queue_waits_briefly_before_dropping_and_counts_refused_batches(
    client: TestClient, tmp_path: Path
) -> None:
    settings = Settings(
        database_path=tmp_path / "log.sqlite", request_log_block_seconds=0.2, database_timeout_seconds=0.05
    )
    log = RequestLog(settings.database_path, max_queue=1, settings=settings)
    try:
        stalled: queues.Queue = queues.Queue(maxsize=1)
        stalled.put_nowait(("row",))
        real, log.queue = log.queue, stalled
        started = time.perf_counter()
        log.log("r1", 1, "retrieval", "v", [1], [0.5], 1.0, False, None)
        waited = time.perf_counter() - started
        assert 0.15 <= waited < 1.0 and log.dropped == 1  # back-pressure, then a counted drop
        log.queue = real
        # a batch the database keeps refusing (another writer holds the lock) is counted too
        holder = sqlite3.connect(str(log_file_of(settings.database_path)), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        before = metric_value(client.get("/metrics").text, "request_log_dropped_total")
        try:
            log.log("r2", 1, "retrieval", "v", [1], [0.5], 1.0, False, None)
            deadline = time.time() + 10
            while log.dropped < 2 and time.time() < deadline:
                time.sleep(0.05)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        after = metric_value(client.get("/metrics").text, "request_log_dropped_total")
    finally:
        log.close()
    assert log.dropped == 2 and after - before == 1


def test_a_dead_workers_active_users_leave_the_total(tmp_path: Path) -> None:
    # Before: a crashed worker's last active_users_count stayed in the livesum total forever.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    dead = textwrap.dedent(
        """
        from movierec.serving.metrics import ActiveUsers
        users = ActiveUsers()
        for u in range(5):
            users.touch(u)
        """
    )
    subprocess.run([sys.executable, "-c", dead], check=True, env=env)
    live = textwrap.dedent(
        """
        from movierec.serving.metrics import ActiveUsers, render
        users = ActiveUsers()
        users.touch(1)
        users.touch(2)
        print(render().decode())
        """
    )
    out = subprocess.run([sys.executable, "-c", live], check=True, env=env, capture_output=True, text=True).stdout
    assert metric_value(out, "active_users_count") == 2, out


@pytest.mark.parametrize(
    ("name", "value"),
    [("MOVIEREC_FEEDBACK_RATE_LIMIT", "-1"), ("MOVIEREC_REQUEST_BUDGET_SECONDS", "0"), ("MOVIEREC_AUTH", "maybe")],
)
def test_a_bad_limit_is_one_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    from movierec.errors import ParamsError
    from movierec.serving.settings import load_service_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ParamsError, match=name):
        load_service_settings()


def test_feedback_dated_in_the_future_cannot_hold_a_users_window(tmp_path: Path) -> None:
    settings = Settings(database_path=tmp_path / "e.sqlite", feedback_per_user=3, feedback_rate_limit=1000)
    store = EventStore(settings.database_path, settings)
    try:
        for item in (91, 92, 93):  # planted first, with timestamps far in the future
            store.add(7, item, None, "view", 2**40)
        for n, item in enumerate((11, 12, 13)):  # then the user's real events
            store.add(7, item, None, "view", 1_000 + n)
        assert store.items_of(7) == [11, 12, 13]
    finally:
        store.close()


def test_a_full_log_queue_never_stalls_the_event_loop(tmp_path: Path) -> None:
    import asyncio

    settings = Settings(database_path=tmp_path / "log.sqlite", request_log_block_seconds=0.5)
    log = RequestLog(settings.database_path, max_queue=1, settings=settings)
    stalled: queues.Queue = queues.Queue(maxsize=1)
    stalled.put_nowait(("row",))
    real, log.queue = log.queue, stalled

    async def route() -> float:
        started = time.perf_counter()
        log.log("r1", 1, "retrieval", "v", [1], [0.5], 1.0, False, None)
        return time.perf_counter() - started

    try:
        waited = asyncio.run(route())
    finally:
        log.queue = real
        log.close()
    assert waited < 0.1 and log.dropped == 1

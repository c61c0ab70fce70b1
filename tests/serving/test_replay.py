"""Replay scores the served lists against the feedback that came after each request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from movierec.errors import DataError
from movierec.serving.replay import replay
from movierec.serving.store import EventStore, RequestLog, read_request_logs


def test_replay_counts_hits_of_later_feedback_only(tmp_path: Path) -> None:
    db = tmp_path / "serve.sqlite"
    events = EventStore(db)
    log = RequestLog(db)
    events.add(1, 30, 4.0, "rating", int(time.time()) - 100)  # before the request: not ground truth
    log.log("r1", 1, "recommendations", "v1", [10, 20, 30], [0.9, 0.8, 0.7], 5.0, False, None)
    log.log("r2", 2, "retrieval", "v1", [40, 50], [0.5, 0.4], 4.0, False, None)
    log.log("r3", 3, "ranking", "v1", [10], [0.1], 1.0, False, None)  # ranking requests are not replayed
    log.flush()
    later = int(time.time()) + 10
    events.add(1, 20, 5.0, "rating", later)  # user 1: a hit (20 was served)
    events.add(1, 99, 3.0, "rating", later)  # and a miss
    events.add(2, 77, None, "click", later)  # user 2: a miss
    log.close()
    events.close()
    assert [r["request_id"] for r in read_request_logs(db)] == ["r1", "r2", "r3"]
    report = replay(db, None, k=3)
    assert report["logged_requests"] == 2
    assert report["requests_with_later_feedback"] == 2
    assert report["served_hit_rate"] == pytest.approx(0.5)  # user 1 hit, user 2 missed
    assert report["served_recall"] == pytest.approx((1 / 2 + 0) / 2)  # user 1 found 1 of 2 later items


def test_replay_without_a_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no service database"):
        replay(tmp_path / "missing.sqlite")


def test_request_log_never_blocks_when_full(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "s.sqlite", max_queue=1)
    start = time.perf_counter()
    for i in range(200):
        log.log(f"r{i}", 1, "retrieval", "v", [1], [0.1], 1.0, False, None)
    assert time.perf_counter() - start < 1.0  # a full queue drops rows instead of waiting
    log.close()
    assert len(read_request_logs(tmp_path / "s.sqlite")) + log.dropped == 200

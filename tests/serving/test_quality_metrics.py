"""The windowed quality gauges: coverage and the interacted share, from the request log and the feedback
(read from either storage backend)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from storage_backends import Backend

from movierec.serving.quality import FEEDBACK_LAG_SECONDS, QualityDigest, QualityWindow
from movierec.serving.settings import Settings
from movierec.serving.sqlite_storage import SqliteStorage
from movierec.serving.store import EventStore, RequestLog


def test_the_window_counts_pairs_followed_by_feedback_and_forgets_old_ones() -> None:
    window = QualityWindow(window=100, max_pairs=1000)
    window.served(10, 1, "recommendations", [5, 6, 7, 8])
    window.served(20, 2, "recommendations", [5, 9])
    window.served(25, None, "recommendations", [11])  # no user id: coverage only
    window.served(30, 3, "popular", [1, 2])  # not the chain: coverage only
    assert window.feedback(40, 1, 6) and window.feedback(41, 2, 9)
    assert not window.feedback(42, 3, 1)  # popular lists are not recommendations to the user
    assert not window.feedback(5, 1, 7)  # before it was recommended
    assert window.counts() == (6, 2)
    coverage = window.coverage({1, 2, 5, 6, 7, 8, 9, 10, 11, 12})
    assert coverage["recommendations"] == pytest.approx(0.6) and coverage["popular"] == pytest.approx(0.2)
    assert coverage["retrieval"] == 0
    window.served(100, 1, "recommendations", [6])  # served again: stays in the window
    window.expire(now=125)  # before t=25 out: user 1's first list (but (1, 6)) and user 2's
    assert window.counts() == (1, 1) and set(window.pairs) == {(1, 6)}
    assert window.coverage({5, 6, 11})["recommendations"] == pytest.approx(2 / 3)  # 6 and 11 (t=25)


def test_the_window_keeps_at_most_max_pairs_the_most_recent() -> None:
    window = QualityWindow(window=1000, max_pairs=3)
    window.served(1, 1, "recommendations", [1, 2])
    window.feedback(2, 1, 1)
    window.served(3, 2, "recommendations", [3, 4])
    assert set(window.pairs) == {(1, 2), (2, 3), (2, 4)} and window.counts() == (3, 0)


def test_the_digest_reads_what_every_worker_logged_and_publishes_it(backend: Backend) -> None:
    from movierec.serving.metrics import render

    settings = backend.settings(quality_window_seconds=600)
    storage = backend.open()  # with PostgreSQL, log rows are read without waiting for them to settle
    log = RequestLog(backend.open(), settings=settings)  # another worker (or replica) logs
    events = EventStore(backend.open(), settings)
    catalogue = {i: i for i in range(1, 11)}
    digest = QualityDigest.for_service(storage, lambda: catalogue, settings)
    try:
        log.log("a", 1, "recommendations", "v", [1, 2, 3], [0.9, 0.8, 0.7], 1.0, False, None)
        log.log("b", 2, "recommendations", "v", [3, 4], [0.9, 0.8], 1.0, False, None)
        log.log("c", None, "similar", "v", [9, 99], [0.9, 0.8], 1.0, False, None)  # 99: not in this catalogue
        log.flush()
        events.add(1, 2, None, "click", int(time.time()))
        events.add(2, 7, 4.0, "rating", int(time.time()))  # never recommended to user 2
        now = time.time() + FEEDBACK_LAG_SECONDS + 0.1  # the feedback is old enough to be matched
        values = digest.run_once(now)
        assert values is not None
        assert values["served_pairs"] == 5 and values["interacted_pairs"] == 1
        assert values["interacted_ratio"] == pytest.approx(0.2)
        assert values["coverage_recommendations"] == pytest.approx(0.4)
        assert values["coverage_similar"] == pytest.approx(0.1)
        text = render().decode()
        assert "recommendation_interacted_ratio 0.2" in text
        assert 'catalogue_coverage_ratio{endpoint="recommendations"} 0.4' in text
        # a later pass reads only new rows; once the window has passed, nothing is left
        later = digest.run_once(now + 601)
        assert later is not None and later["served_pairs"] == 0 and math.isnan(later["interacted_ratio"])
        assert later["coverage_recommendations"] == 0
    finally:
        digest.stop()
        log.close()


def test_log_rows_that_may_still_be_overtaken_wait_before_the_digest_reads_them(postgres: PostgresServer) -> None:
    """PostgreSQL numbers log rows when inserted, and concurrent writers may commit out of that
    order; rows younger than the settling time are left for a later pass, so none is skipped."""
    from movierec.serving.postgres_storage import PostgresStorage

    _, url = postgres.new_database()
    settings = Settings(database_url=url)
    storage = PostgresStorage(url, settings, settle_seconds=1.0)
    try:
        storage.write_logs([("s1", time.time(), 1, "recommendations", "v", "[1]", "[0.5]", 1.0, 0, None)])
        assert storage.logs_after(0, 10) == []  # just stored: not yet
        time.sleep(1.1)
        assert [r[2] for r in storage.logs_after(0, 10)] == [1]
    finally:
        storage.close()


def test_one_worker_computes_when_several_share_the_metrics_folder(tmp_path: Path) -> None:
    settings = Settings(database_path=tmp_path / "q.sqlite")
    storage = SqliteStorage(settings.database_path, settings)
    first = QualityDigest(storage, lambda: None, 60, 1, 10, lock_dir=tmp_path)
    second = QualityDigest(storage, lambda: None, 60, 1, 10, lock_dir=tmp_path)
    try:
        assert first.run_once() is not None
        assert second.run_once() is None  # the lock is held
        first.stop()  # the computing worker goes away: the next one takes over
        assert second.run_once() is not None
    finally:
        first.stop()
        second.stop()
        storage.close()


def test_a_pass_reads_a_bounded_number_of_rows_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.serving import quality

    monkeypatch.setattr(quality, "CHUNK_ROWS", 2)
    monkeypatch.setattr(quality, "ROWS_PER_PASS", 4)
    settings = Settings(database_path=tmp_path / "q.sqlite")
    storage = SqliteStorage(settings.database_path, settings)
    log = RequestLog(storage, settings=settings)
    digest = QualityDigest(storage, lambda: None, 600, 1, 100)
    try:
        assert digest.run_once() is not None  # the first pass starts from the newest rows: none yet
        for n in range(5):
            log.log(f"r{n}", n, "recommendations", "v", [n], [0.5], 1.0, False, None)
        log.flush()
        assert digest.run_once()["served_pairs"] == 4  # two chunks of two, then the pass stops
        assert digest.run_once()["served_pairs"] == 5  # the rest on the next pass
    finally:
        log.close()
        storage.close()


def test_repeated_lists_count_as_if_every_row_were_recorded(tmp_path: Path) -> None:
    """A pass decodes each distinct list once; below the pair cap the window ends as if it had recorded every row."""
    settings = Settings(database_path=tmp_path / "q.sqlite")
    storage = SqliteStorage(settings.database_path, settings)
    digest = QualityDigest(storage, lambda: {1: 0, 2: 1, 3: 2, 4: 3}, 600, 1, 100)
    now = time.time()
    rows = [
        (f"a{n}", now - 300 + n, 7, "recommendations", "v", "[1, 2]", "[0.5, 0.4]", 1.0, 0, None) for n in range(50)
    ]
    rows += [
        (f"b{n}", now - 290 + n, 8, "recommendations", "v", "[1, 2]", "[0.5, 0.4]", 1.0, 0, None) for n in range(5)
    ]
    rows += [(f"c{n}", now - 200 + n, None, "similar", "v", "[3]", "[0.9]", 1.0, 0, None) for n in range(20)]
    try:
        assert digest.run_once(now) is not None  # starts from the newest rows: none yet
        storage.write_logs(rows)
        got = digest.run_once(now)
        assert got["served_pairs"] == 4  # users 7 and 8, items 1 and 2
        assert got["coverage_recommendations"] == 0.5 and got["coverage_similar"] == 0.25
        window = digest.state
        assert window.pairs[(7, 1)] == [now - 300, now - 251]  # first and last time it was served
        assert window.feedback(now - 299, 7, 2)  # after the first serving: it counts
        assert not window.feedback(now - 291, 8, 1)  # before user 8 was first served it
        # the window forgets by the last serving (user 8's was at now - 286, user 7's at now - 251),
        # in that order, though user 7 was served first
        window.expire(now - 252 + 600)
        assert (7, 1) in window.pairs and (8, 1) not in window.pairs
        window.expire(now - 250 + 600)
        assert not window.pairs
    finally:
        storage.close()

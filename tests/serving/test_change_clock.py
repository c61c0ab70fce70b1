"""The shared feedback counter: seen by every worker, and no increment lost."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from movierec.serving.change_clock import ChangeClock, clock_file_of
from movierec.serving.database import StoreUnavailable


def test_clock_file_sits_beside_the_database(tmp_path: Path) -> None:
    assert clock_file_of(tmp_path / "service.sqlite") == tmp_path / "service-feedback.clock"


def test_every_opener_sees_one_counter(tmp_path: Path) -> None:
    path = tmp_path / "c.clock"
    one, two = ChangeClock(path), ChangeClock(path)
    try:
        assert one.now() == two.now() == 0
        assert one.advance() == 1 and two.now() == 1
        assert two.advance() == 2 and one.now() == 2
        three = ChangeClock(path)  # a worker started later keeps the count
        assert three.now() == 2
        three.close()
    finally:
        one.close()
        two.close()


def _advance(path: str, times: int) -> None:
    clock = ChangeClock(Path(path))
    for _ in range(times):
        clock.advance()
    clock.close()


def test_workers_advancing_at_once_lose_no_increment(tmp_path: Path) -> None:
    path = tmp_path / "c.clock"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_advance, args=(str(path), 400)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    clock = ChangeClock(path)
    assert clock.now() == 1600
    clock.close()


def test_a_path_that_is_a_folder_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.clock").mkdir()
    with pytest.raises(StoreUnavailable, match=r"cannot open the feedback change counter .*c\.clock"):
        ChangeClock(tmp_path / "c.clock")  # a folder, not a file

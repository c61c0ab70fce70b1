"""``movierec bench workers``' arithmetic: mean and spread over seeds, and the seed-by-seed
difference from the first worker count (the runs themselves are the integration test's)."""

from __future__ import annotations

import pytest

from movierec.stages.bench_workers import format_table, paired, summarise


def _row(workers: int, seed: int, recall100: float, seconds: float) -> dict:
    return {
        "workers": workers,
        "seed": seed,
        "seconds": seconds,
        "chosen_epochs": 3,
        "recall@10": recall100 / 4,
        "recall@100": recall100,
        "ndcg@10": recall100 / 5,
    }


ROWS = [
    _row(1, 1, 0.60, 30.0),
    _row(2, 1, 0.64, 70.0),
    _row(1, 2, 0.70, 34.0),
    _row(2, 2, 0.66, 80.0),
]


def test_summary_is_mean_and_spread_over_seeds() -> None:
    summary = summarise(ROWS, [1, 2])
    assert summary["1"]["recall@100"]["mean"] == pytest.approx(0.65)
    assert summary["1"]["recall@100"]["std"] == pytest.approx(0.0707107, abs=1e-6)  # sample sd of 0.60, 0.70
    assert (summary["1"]["recall@100"]["min"], summary["1"]["recall@100"]["max"]) == (0.60, 0.70)
    assert summary["2"]["seconds"]["mean"] == pytest.approx(75.0)
    assert summarise(ROWS[:1], [1])["1"]["recall@10"]["std"] == 0.0  # one seed: no spread


def test_paired_differences_are_taken_seed_by_seed() -> None:
    diff = paired(ROWS, [1, 2])["2"]["recall@100"]
    assert diff["mean"] == pytest.approx(0.0)  # +0.04 and -0.04
    assert diff["max_abs"] == pytest.approx(0.04)
    assert paired(ROWS, [2, 1])["1"]["recall@100"]["max_abs"] == pytest.approx(0.04)


def test_the_table_has_a_row_per_worker_count() -> None:
    lines = format_table({"summary": summarise(ROWS, [1, 2])}).splitlines()
    assert lines[0].split()[:2] == ["workers", "recall@10"]
    assert lines[1].split()[0] == "1" and "0.6500 ± 0.0707" in lines[1]
    assert lines[2].split()[0] == "2" and "75.0 ± 7.1" in lines[2]

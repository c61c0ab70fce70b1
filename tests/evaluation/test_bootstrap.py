"""Bootstrap intervals cover what they should, and paired comparisons use the pairing."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.evaluation.bootstrap import mean_interval, paired_ratio


def test_mean_interval_contains_the_mean_and_shrinks_with_more_users() -> None:
    rng = np.random.default_rng(0)
    small = mean_interval(rng.random(100), seed=1)
    large = mean_interval(rng.random(10_000), seed=1)
    assert small["low"] <= small["mean"] <= small["high"]
    assert (large["high"] - large["low"]) < 0.3 * (small["high"] - small["low"])
    # the half-width of a 95% interval of a uniform mean is about 1.96 * sqrt(1/12 / n)
    assert large["high"] - large["low"] == pytest.approx(2 * 1.96 * np.sqrt(1 / 12 / 10_000), rel=0.15)


def test_interval_coverage_is_near_its_level() -> None:
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(200):
        values = rng.exponential(1.0, 200)
        interval = mean_interval(values, replicates=400, seed=trial)
        covered += interval["low"] <= 1.0 <= interval["high"]
    assert 0.88 <= covered / 200 <= 0.99


def test_paired_interval_is_tight_when_the_difference_is_consistent() -> None:
    rng = np.random.default_rng(3)
    reference = rng.random(500)
    system = reference * 1.05  # 5% better for every user, although users vary a lot
    paired = paired_ratio(system, reference, seed=0)
    assert paired["ratio"] == pytest.approx(1.05)
    assert paired["low"] > 1.04 and paired["high"] < 1.06
    # with the pairing broken, the same means are far from significant
    unpaired = paired_ratio(system, rng.permutation(reference), seed=0)
    assert unpaired["low"] < 1.0


def test_paired_ratio_rejects_misaligned_or_bad_input() -> None:
    with pytest.raises(ValueError, match="align"):
        paired_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="non-finite"):
        mean_interval(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval(np.array([]))
    assert paired_ratio(np.ones(3), np.zeros(3))["ratio"] == float("inf")


def test_kept_replicates_give_the_same_intervals_as_fresh_draws() -> None:
    """A report asks for the same resampling for every metric: the draws are kept, not redrawn."""
    from movierec.evaluation import bootstrap

    values = np.random.default_rng(3).random(5_000)
    other = np.random.default_rng(4).random(5_000)
    bootstrap._kept.clear()
    fresh = mean_interval(values, replicates=250, seed=2)
    assert (5_000, 250, 2) in bootstrap._kept
    assert mean_interval(values, replicates=250, seed=2) == fresh
    kept_ratio = paired_ratio(values, other, replicates=250, seed=2)
    bootstrap._kept.clear()
    assert paired_ratio(values, other, replicates=250, seed=2) == kept_ratio
    assert mean_interval(values, replicates=250, seed=5) != fresh  # another seed, other draws

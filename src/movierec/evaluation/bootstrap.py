"""Bootstrap confidence intervals over users, and paired comparisons of two systems.

Every user scored is one draw; a bootstrap replicate resamples the users with
replacement. The interval of a mean metric is the percentile interval of its
replicates. Two systems are compared *paired*: each replicate resamples the same users
for both, so the per-user differences, not the two spreads, decide the interval of the
ratio of their means. The replicate indices depend only on the number of users and the
seed, so every system in one report is resampled identically.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95
_CHUNK = 100  # replicates drawn at once: bounds memory to 100 x n_users indices


_KEPT_BYTES = 1 << 30  # replicate indices kept for the next call with the same users (a report's many metrics)
_kept: dict[tuple[int, int, int], list[np.ndarray]] = {}


def _replicates(n: int, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """The replicates' user indices, ``_CHUNK`` replicates at a time. They depend only on
    ``(n, replicates, seed)``; the last such draw is kept (up to ``_KEPT_BYTES``), since a
    report asks for the same ones for every metric of every system."""
    key = (n, replicates, seed)
    if key in _kept:
        yield from _kept[key]
        return
    dtype = np.int64 if n > 2**31 - 1 else np.int32
    keep = n * replicates * np.dtype(dtype).itemsize <= _KEPT_BYTES
    chunks = []
    rng = np.random.default_rng(seed)
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        chunk = rng.integers(0, n, size=(size, n), dtype=dtype)
        if keep:
            chunks.append(chunk)
        yield chunk
    if keep and len(chunks) * _CHUNK >= replicates:
        _kept.clear()
        _kept[key] = chunks


def _check(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of per-user values, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds non-finite values")
    return values


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def mean_interval(
    values: np.ndarray, replicates: int = DEFAULT_REPLICATES, level: float = DEFAULT_LEVEL, seed: int = 0
) -> dict[str, float]:
    """Mean of per-user values with its percentile bootstrap interval.

    Args:
        values: one value per user.
        replicates: bootstrap replicates.
        level: coverage of the interval.
        seed: seed of the resampling.

    Returns:
        ``{"mean", "low", "high"}``.
    """
    values = _check(values, "values")
    means = np.concatenate([values[idx].mean(axis=1) for idx in _replicates(values.size, replicates, seed)])
    low, high = _interval(means, level)
    return {"mean": float(values.mean()), "low": low, "high": high}


def paired_ratio(
    system: np.ndarray,
    reference: np.ndarray,
    replicates: int = DEFAULT_REPLICATES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, float]:
    """Ratio of two systems' mean metrics over the same users, with a paired bootstrap interval.

    Args:
        system: per-user values of the system compared.
        reference: per-user values of the reference system (same users, same order).
        replicates: bootstrap replicates.
        level: coverage of the interval.
        seed: seed of the resampling.

    Returns:
        ``{"ratio", "low", "high", "difference", "difference_low", "difference_high"}``:
        the ratio of means and the mean per-user difference, each with its interval.
        The ratio is ``inf`` when the reference's mean is zero.
    """
    system = _check(system, "system")
    reference = _check(reference, "reference")
    if system.shape != reference.shape:
        raise ValueError(f"paired values must align: {system.shape} vs {reference.shape}")
    ratios, diffs = [], []
    for idx in _replicates(system.size, replicates, seed):
        a, b = system[idx].mean(axis=1), reference[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(np.where(b > 0, a / np.where(b > 0, b, 1.0), np.inf))
        diffs.append(a - b)
    ref_mean = reference.mean()
    ratio = float(system.mean() / ref_mean) if ref_mean > 0 else float("inf")
    low, high = _interval(np.concatenate(ratios), level)
    d_low, d_high = _interval(np.concatenate(diffs), level)
    return {
        "ratio": ratio,
        "low": low,
        "high": high,
        "difference": float(system.mean() - ref_mean),
        "difference_low": d_low,
        "difference_high": d_high,
    }

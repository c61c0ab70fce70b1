"""``movierec split``: divide interactions into train, validation and test without leakage.

The default, ``user_temporal``, is the *per-user temporal hold-out* the quality bars use:
each user's events are ordered by time; the last ``test_frac`` of them (at least one) are
held out for test and the ``valid_frac`` before those (at least one) for validation. Users
with fewer than ``min_events`` events stay in training only. Every held-out event of a
user is later than every one of that user's training events, and every user scored is
warm, so the measurement has one row per active user (943 on ML-100K) instead of the few
users active in a global test window. Across users it is not time-ordered: a model may
train on another user's events that happen after this user's test events. The global
split below has no such leak and is kept as the second, production-like report.

The *global temporal* split (``temporal``) is the production-like protocol: two timestamp
cut points at the 80% and 90% quantiles, so every training event happens strictly before
every validation event, and every validation event strictly before every test event. Ties
at a cut point all fall on the later side, which keeps the ordering strict.

The third, ``leave_last_n``, holds out each user's last n events for test and the n
before them for validation (the common academic protocol, with the same cross-user
caveat as the per-user hold-out).

The split streams the interactions file batch by batch; only the timestamp column (or,
for the per-user methods, the user and timestamp columns) is held in memory at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from movierec.data.schema import INTERACTIONS_FILE, INTERACTIONS_SCHEMA
from movierec.errors import DataError, ParamsError
from movierec.io import atomic_dir, write_json
from movierec.params import require_fraction, require_positive_int

PARTS = ("train", "valid", "test")
BATCH_ROWS = 1_000_000


def split(prepared_dir: Path, out_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Split ``prepared_dir/interactions.parquet`` into ``out_dir/{train,valid,test}.parquet``.

    Args:
        prepared_dir: output of the prepare step.
        out_dir: where the three parts and ``split.json`` are written (atomically).
        params: ``method`` (``user_temporal``, ``temporal`` or ``leave_last_n``) and that
            method's keys: ``valid_frac`` and ``test_frac`` (both temporal methods),
            ``min_events`` (user_temporal), ``n`` (leave-last-n). :func:`method_params`
            flattens the nested ``split`` section of params.yaml into this form.

    Returns:
        The split report: sizes, boundaries and cold-start shares.
    """
    source = Path(prepared_dir) / INTERACTIONS_FILE
    if not source.exists():
        raise DataError("prepared interactions not found; run `movierec data prepare` first", path=source)
    method = params.get("method", "temporal")
    parquet = pq.ParquetFile(source)
    if parquet.metadata.num_rows == 0:
        raise DataError("no interactions to split", path=source)
    with atomic_dir(out_dir) as tmp:
        if method == "temporal":
            valid_frac = require_fraction(params.get("valid_frac", 0.1), "split.valid_frac")
            test_frac = require_fraction(params.get("test_frac", 0.1), "split.test_frac")
            if valid_frac + test_frac >= 1:
                raise ParamsError("split.valid_frac + split.test_frac must be below 1")
            ts = parquet.read(columns=["timestamp"]).column("timestamp").to_numpy()
            try:
                bounds = temporal_boundaries(ts, valid_frac, test_frac)
            except ValueError as exc:
                raise DataError(str(exc), path=source) from exc
            del ts
            _write_temporal(parquet, tmp, *bounds)
            extra: dict[str, Any] = {"valid_start": int(bounds[0]), "test_start": int(bounds[1])}
        elif method == "user_temporal":
            valid_frac = require_fraction(params.get("valid_frac", 0.1), "split.user_temporal.valid_frac")
            test_frac = require_fraction(params.get("test_frac", 0.2), "split.user_temporal.test_frac")
            if valid_frac + test_frac >= 1:
                raise ParamsError("split.user_temporal.valid_frac + test_frac must be below 1")
            min_events = require_positive_int(params.get("min_events", 5), "split.user_temporal.min_events")
            if min_events < 3:
                raise ParamsError(
                    "split.user_temporal.min_events must be at least 3 (train, valid and test "
                    f"each need an event), got {min_events}"
                )
            _write_by_position(parquet, tmp, lambda n: user_temporal_counts(n, valid_frac, test_frac, min_events))
            extra = {"valid_frac": valid_frac, "test_frac": test_frac, "min_events": min_events}
        elif method == "leave_last_n":
            n = require_positive_int(params.get("n", 1), "split.n")
            _write_by_position(parquet, tmp, lambda sizes: (np.full_like(sizes, n), np.full_like(sizes, n)))
            extra = {"n": n}
        else:
            raise ParamsError(f"split.method must be 'user_temporal', 'temporal' or 'leave_last_n', got {method!r}")
        report = {"method": method, **extra, **split_report(tmp)}
        write_json(tmp / "split.json", report)
    return report


def temporal_boundaries(ts: np.ndarray, valid_frac: float, test_frac: float) -> tuple[int, int]:
    """Return the timestamps at which validation and test begin.

    Validation starts at the ``1 - valid_frac - test_frac`` quantile of the event times,
    test at the ``1 - test_frac`` quantile.

    Args:
        ts: every event's timestamp.
        valid_frac: share of events meant for validation.
        test_frac: share of events meant for test.

    Returns:
        ``(valid_start, test_start)``.

    Raises:
        ValueError: the timestamps are too concentrated to give three non-empty parts.
    """
    n = ts.size
    i_valid = int(np.floor(n * (1 - valid_frac - test_frac)))
    i_test = int(np.floor(n * (1 - test_frac)))
    valid_start, test_start = np.partition(ts, [i_valid, i_test])[[i_valid, i_test]]
    if not (ts.min() < valid_start < test_start):
        raise ValueError(
            "timestamps are too concentrated for a temporal split into three non-empty parts "
            f"(valid would start at {valid_start}, test at {test_start}); use split.method: leave_last_n"
        )
    return int(valid_start), int(test_start)


def _write_temporal(parquet: pq.ParquetFile, out: Path, valid_start: int, test_start: int) -> None:
    """Stream batches and route each row to its part by timestamp."""
    writers = {part: pq.ParquetWriter(out / f"{part}.parquet", INTERACTIONS_SCHEMA) for part in PARTS}
    try:
        with tqdm(total=parquet.metadata.num_rows, unit="rows", desc="split", file=sys.stderr) as bar:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                table = pa.Table.from_batches([batch]).cast(INTERACTIONS_SCHEMA)
                ts = table.column("timestamp")
                masks = {
                    "train": pc.less(ts, valid_start),
                    "valid": pc.and_(pc.greater_equal(ts, valid_start), pc.less(ts, test_start)),
                    "test": pc.greater_equal(ts, test_start),
                }
                for part, mask in masks.items():
                    writers[part].write_table(table.filter(mask))
                bar.update(batch.num_rows)
    finally:
        for writer in writers.values():
            writer.close()


def method_params(section: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    """Flatten params.yaml's ``split`` section for one method.

    The section names the default ``method`` and holds one sub-mapping of settings per
    method (``user_temporal``, ``temporal``, ``leave_last_n``), so that a second report
    can use another method with its own settings.
    """
    method = method or section.get("method", "user_temporal")
    own = section.get(method, {})
    if own is not None and not isinstance(own, dict):
        raise ParamsError(f"split.{method} must be a mapping of settings, got {own!r}")
    flat = {k: v for k, v in section.items() if not isinstance(v, dict) and k != "method"}
    return {**flat, **(own or {}), "method": method}


def user_temporal_counts(
    sizes: np.ndarray, valid_frac: float, test_frac: float, min_events: int
) -> tuple[np.ndarray, np.ndarray]:
    """Events held out per user for test and for validation under the per-user hold-out.

    A user with ``n >= min_events`` events gives ``max(1, round(test_frac * n))`` to test
    and ``max(1, round(valid_frac * n))`` to validation; fewer events give none.

    Args:
        sizes: each user's number of events.
        valid_frac: share of a user's events for validation.
        test_frac: share of a user's events for test.
        min_events: users with fewer events stay in training only.

    Returns:
        ``(n_test, n_valid)`` per user.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    eligible = sizes >= min_events
    n_test = np.where(eligible, np.maximum(1, np.rint(sizes * test_frac).astype(np.int64)), 0)
    n_valid = np.where(eligible, np.maximum(1, np.rint(sizes * valid_frac).astype(np.int64)), 0)
    # always leave at least one training event
    n_valid = np.minimum(n_valid, np.maximum(sizes - n_test - 1, 0))
    return n_test, n_valid


def _write_by_position(
    parquet: pq.ParquetFile, out: Path, counts: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> None:
    """Hold out each user's last events: ``counts(sizes)`` gives how many go to test and to
    validation per user (the test events are the latest, validation the ones just before).

    Ties in time are broken by the row order of the prepared file, so the split is
    deterministic.
    """
    keys = parquet.read(columns=["user_id", "timestamp"])
    users = keys.column("user_id").to_numpy()
    ts = keys.column("timestamp").to_numpy()
    order = np.lexsort((np.arange(users.size), ts, users))
    sorted_users = users[order]
    # position of each event from the end of its user's sequence (0 = last)
    group_end = np.r_[np.flatnonzero(np.diff(sorted_users)), sorted_users.size - 1]
    sizes = np.diff(np.r_[-1, group_end])
    n_test, n_valid = counts(sizes)
    ends = np.repeat(group_end, sizes)
    from_end = ends - np.arange(sorted_users.size)
    test_n, valid_n = np.repeat(n_test, sizes), np.repeat(n_valid, sizes)
    part_sorted = np.where(from_end < test_n, 2, np.where(from_end < test_n + valid_n, 1, 0)).astype(np.int8)
    part_of_row = np.empty_like(part_sorted)
    part_of_row[order] = part_sorted
    del keys, users, ts, order, sorted_users
    writers = {part: pq.ParquetWriter(out / f"{part}.parquet", INTERACTIONS_SCHEMA) for part in PARTS}
    offset = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            table = pa.Table.from_batches([batch]).cast(INTERACTIONS_SCHEMA)
            parts = part_of_row[offset : offset + batch.num_rows]
            for code, part in enumerate(PARTS):
                writers[part].write_table(table.filter(pa.array(parts == code)))
            offset += batch.num_rows
    finally:
        for writer in writers.values():
            writer.close()


def split_report(split_dir: Path) -> dict[str, Any]:
    """Sizes, time ranges and cold-start shares of a written split.

    A validation user (item) is *cold* when it has no training event; a test user
    (item) is cold when it has no training or validation event.
    """
    tables = {
        part: pq.read_table(Path(split_dir) / f"{part}.parquet", columns=["user_id", "item_id", "timestamp"])
        for part in PARTS
    }
    report: dict[str, Any] = {}
    for part, table in tables.items():
        if table.num_rows == 0:
            raise DataError(
                f"the {part} part is empty; adjust the split parameters", path=Path(split_dir) / f"{part}.parquet"
            )
        report[f"{part}_interactions"] = table.num_rows
        report[f"{part}_users"] = len(pc.unique(table.column("user_id")))
        report[f"{part}_items"] = len(pc.unique(table.column("item_id")))
        report[f"{part}_time_min"] = int(pc.min(table.column("timestamp")).as_py())
        report[f"{part}_time_max"] = int(pc.max(table.column("timestamp")).as_py())
    known = {"valid": [tables["train"]], "test": [tables["train"], tables["valid"]]}
    for part, history in known.items():
        for key in ("user_id", "item_id"):
            seen = pa.chunked_array([c for t in history for c in t.column(key).chunks]).unique()
            target = tables[part].column(key)
            is_cold = pc.invert(pc.is_in(target, value_set=seen))
            distinct_cold = len(pc.unique(target.filter(is_cold)))
            kind = "users" if key == "user_id" else "items"
            report[f"{part}_cold_{kind}_share"] = round(distinct_cold / len(pc.unique(target)), 6)
            report[f"{part}_cold_{kind}_interaction_share"] = round(pc.sum(is_cold).as_py() / target.length(), 6)
    return report

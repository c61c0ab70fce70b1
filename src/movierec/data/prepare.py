"""Turn a raw MovieLens directory into validated canonical parquet tables and a summary."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from movierec.data.formats import InteractionsSource, detect_format, get_format
from movierec.data.schema import (
    INTERACTIONS_FILE,
    INTERACTIONS_SCHEMA,
    ITEMS_FILE,
    TAGS_FILE,
    USERS_FILE,
    USERS_SCHEMA,
)
from movierec.errors import DataError
from movierec.io import atomic_dir, write_json

SUMMARY_FILE = "summary.json"


class _Checks:
    """Streamed validation and statistics over interaction batches."""

    def __init__(self, source: InteractionsSource, item_ids: np.ndarray, user_ids: np.ndarray | None):
        self.source = source
        self.item_ids = item_ids
        self.known_users = user_ids
        self.rows = 0
        self.rating = [np.inf, -np.inf]
        self.time = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]
        self.users: list[np.ndarray] = []
        # kind -> [count, first line, first id] of interactions whose item/user is unknown
        self.unknown: dict[str, list[int]] = {"item": [0, 0, 0], "user": [0, 0, 0]}

    def _fail(self, message: str, first_line: int, index: int) -> NoReturn:
        raise DataError(message, self.source.path, first_line + int(index))

    def check(self, batch: pa.RecordBatch) -> None:
        """Validate one batch; its first row is the one after the rows seen so far."""
        if batch.num_rows == 0:
            return
        src = self.source
        first_line = src.header_lines + self.rows + 1
        rating = batch.column("rating").to_numpy()
        bad = ~np.isfinite(rating) | (rating < src.rating_min) | (rating > src.rating_max)
        if src.rating_step:
            steps = rating / src.rating_step
            bad |= steps != np.round(steps)
        if bad.any():
            index = np.flatnonzero(bad)[0]
            self._fail(f"rating {rating[index]:g} out of range: expected {_scale(src)}", first_line, index)
        stamp = batch.column("timestamp").to_numpy()
        if (stamp < 0).any():
            index = np.flatnonzero(stamp < 0)[0]
            self._fail(f"negative timestamp {stamp[index]}", first_line, index)
        users = batch.column("user_id").to_numpy()
        self._unknown("item", batch.column("item_id").to_numpy(), self.item_ids, first_line)
        if self.known_users is not None:
            self._unknown("user", users, self.known_users, first_line)
        self.users.append(np.unique(users))
        self.rating = [min(self.rating[0], rating.min()), max(self.rating[1], rating.max())]
        self.time = [min(self.time[0], stamp.min()), max(self.time[1], stamp.max())]
        self.rows += batch.num_rows

    def _unknown(self, kind: str, ids: np.ndarray, known: np.ndarray, first_line: int) -> None:
        missing = ~np.isin(ids, known)
        count = int(missing.sum())
        if count:
            state = self.unknown[kind]
            if state[0] == 0:
                index = int(np.flatnonzero(missing)[0])
                state[1:] = [first_line + index, int(ids[index])]
            state[0] += count

    def finish(self) -> None:
        """Raise DataError for an empty file or ids the items/users files lack."""
        if self.rows == 0:
            raise DataError("contains no interactions", self.source.path)
        for kind, other in (("item", self.source.items_file), ("user", self.source.users_file)):
            count, line, first = self.unknown[kind]
            if count:
                message = f"{count} interaction(s) reference {kind} ids missing from {other}; the first is {first}"
                raise DataError(message, self.source.path, line)

    def distinct_users(self) -> np.ndarray:
        """The sorted distinct user ids seen in the interactions."""
        return np.unique(np.concatenate(self.users))


def _scale(source: InteractionsSource) -> str:
    """Describe the allowed ratings, for error messages."""
    lo, hi, step = source.rating_min, source.rating_max, source.rating_step
    names = {None: "any value", 1.0: "whole stars", 0.5: "half stars"}
    kind = names[step] if step in names else f"steps of {step:g}"  # noqa: SIM401 (the f-string fails on None)
    return f"{kind} from {lo:g} to {hi:g}"


def _write_interactions(batches: Iterable[pa.RecordBatch], target: Path, checks: _Checks) -> None:
    """Validate and write the interaction batches one by one, with a progress bar."""
    with (
        pq.ParquetWriter(target, INTERACTIONS_SCHEMA) as writer,
        tqdm(desc=checks.source.path.name, unit=" rows", unit_scale=True, file=sys.stderr) as bar,
    ):
        for batch in batches:
            checks.check(batch)
            writer.write_batch(batch)
            bar.update(batch.num_rows)


def _iso_date(timestamp: int) -> str:
    """The UTC calendar date of a unix timestamp, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).date().isoformat()


def prepare(raw_dir: Path, out_dir: Path, fmt: str | None = None) -> dict[str, Any]:
    """Validate a raw dataset directory and write the canonical tables to ``out_dir``.

    Writes ``interactions.parquet`` (streamed batch by batch), ``items.parquet``,
    ``users.parquet``, ``tags.parquet`` (when the source has tags) and
    ``summary.json``. Everything is written into a temporary directory that replaces
    ``out_dir`` only on success, so a failure leaves ``out_dir`` as it was.

    Args:
        raw_dir: the unpacked dataset directory.
        out_dir: where the prepared tables go (replaced as a whole).
        fmt: one of ``FORMATS``; detected from the files when None.

    Returns:
        The summary also written to ``summary.json``.

    Raises:
        DataError: a file is missing, malformed or inconsistent; the message names
            the file and line.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError("dataset directory does not exist", path=raw_dir)
    fmt = fmt or detect_format(raw_dir)
    reader = get_format(fmt)
    source: InteractionsSource = reader.interactions_source(raw_dir)
    tags = reader.read_tags(raw_dir)
    items = reader.read_items(raw_dir, tags=tags)
    users = reader.read_users(raw_dir)
    known_users = None if users is None else users.column("user_id").to_numpy()
    checks = _Checks(source, items.column("item_id").to_numpy(), known_users)
    with atomic_dir(out_dir) as tmp:
        _write_interactions(reader.read_interactions(raw_dir), tmp / INTERACTIONS_FILE, checks)
        checks.finish()
        if users is None:
            users = pa.Table.from_arrays([pa.array(checks.distinct_users(), pa.int64())], schema=USERS_SCHEMA)
        pq.write_table(items, tmp / ITEMS_FILE)
        pq.write_table(users, tmp / USERS_FILE)
        if tags is not None:
            pq.write_table(tags, tmp / TAGS_FILE)
        summary = {
            "format": fmt,
            "source": raw_dir.resolve().name,
            "interactions": checks.rows,
            "users": users.num_rows,
            "items": items.num_rows,
            "tags": 0 if tags is None else tags.num_rows,
            "rating_min": float(checks.rating[0]),
            "rating_max": float(checks.rating[1]),
            "timestamp_min": _iso_date(checks.time[0]),
            "timestamp_max": _iso_date(checks.time[1]),
        }
        write_json(tmp / SUMMARY_FILE, summary)
    return summary

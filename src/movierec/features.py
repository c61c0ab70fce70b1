"""``movierec features``: user, item and history features from the known past only.

Two feature sets are built, one per evaluation period:

* ``valid/``: from the training part only, as of the validation start;
* ``test/``: from training plus validation, as of the test start.

Each holds ``users.parquet`` (demographics when the source has them, plus activity
statistics), ``items.parquet`` (the catalogue's metadata: genres, year, title tokens;
tags applied before the cut; popularity statistics from the known events) and
``histories.parquet`` (each user's last ``history_max_len`` item ids, oldest first).
Nothing from on or after the cut reaches any of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec.data.schema import ITEMS_FILE, TAGS_FILE, USERS_FILE
from movierec.errors import DataError
from movierec.io import atomic_dir, write_json
from movierec.params import require_positive_int

DAY = 86_400
PERIODS = {"valid": ("train",), "test": ("train", "valid")}
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


def build_features(prepared_dir: Path, split_dir: Path, out_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write ``out_dir/{valid,test}/{users,items,histories}.parquet``.

    Args:
        prepared_dir: output of the prepare step (catalogue, users, tags).
        split_dir: output of the split step.
        out_dir: feature root, written atomically.
        params: the ``features`` section: ``history_max_len``, ``recent_days``, ``max_tags``.

    Returns:
        A summary of the feature tables' sizes, per period.
    """
    history_len = require_positive_int(params.get("history_max_len", 50), "features.history_max_len")
    recent_days = float(params.get("recent_days", 30))
    max_tags = require_positive_int(params.get("max_tags", 20), "features.max_tags")
    catalogue = _read(Path(prepared_dir) / ITEMS_FILE)
    users = _read(Path(prepared_dir) / USERS_FILE)
    tags_path = Path(prepared_dir) / TAGS_FILE
    tags = pq.read_table(tags_path) if tags_path.exists() else None
    summary: dict[str, Any] = {}
    with atomic_dir(out_dir) as tmp:
        for period, parts in PERIODS.items():
            known = pa.concat_tables([_read(Path(split_dir) / f"{p}.parquet") for p in parts])
            cut = _period_start(Path(split_dir), period, known)
            dest = tmp / period
            dest.mkdir()
            known_tags = tags.filter(pc.less(tags.column("timestamp"), cut)) if tags is not None else None
            user_table = user_features(known, users, cut)
            item_table = item_features(known, catalogue, known_tags, cut, recent_days, max_tags)
            history_table = histories(known, history_len)
            pq.write_table(user_table, dest / "users.parquet")
            pq.write_table(item_table, dest / "items.parquet")
            pq.write_table(history_table, dest / "histories.parquet")
            summary[period] = {
                "as_of": int(cut),
                "users": user_table.num_rows,
                "items": item_table.num_rows,
                "histories": history_table.num_rows,
            }
        write_json(tmp / "features.json", summary)
    return summary


def _read(path: Path) -> pa.Table:
    if not path.exists():
        raise DataError("input not found; run the earlier pipeline steps first", path=path)
    return pq.read_table(path)


def _period_start(split_dir: Path, period: str, known: pa.Table) -> int:
    """The first timestamp of ``period``: events strictly before it are the known past."""
    target = pq.read_table(split_dir / f"{period}.parquet", columns=["timestamp"]).column("timestamp")
    if len(target) == 0:
        return int(pc.max(known.column("timestamp")).as_py()) + 1
    # under leave-last-n the periods overlap in time; the known part's own end bounds it then
    return max(int(pc.min(target).as_py()), int(pc.max(known.column("timestamp")).as_py()) + 1)


def user_features(known: pa.Table, users: pa.Table, cut: int) -> pa.Table:
    """Demographics of users with known events, plus their activity statistics as of ``cut``."""
    stats = known.group_by("user_id").aggregate(
        [("item_id", "count"), ("rating", "mean"), ("rating", "stddev"), ("timestamp", "min"), ("timestamp", "max")]
    )
    stats = stats.rename_columns(["user_id", "n_interactions", "mean_rating", "std_rating", "first_ts", "last_ts"])
    days = pc.divide(pc.cast(pc.subtract(pa.scalar(cut, pa.int64()), stats.column("last_ts")), pa.float64()), DAY)
    stats = stats.append_column("days_since_last", days)
    stats = stats.set_column(
        stats.schema.get_field_index("std_rating"), "std_rating", pc.fill_null(stats.column("std_rating"), 0.0)
    )
    joined = stats.join(users, "user_id", join_type="left outer")
    return joined.sort_by("user_id")


def title_tokens(title: str | None) -> list[str]:
    """Lower-cased word tokens of a title, without the trailing release year."""
    if not title:
        return []
    return [t.lower() for t in _TOKEN.findall(_YEAR_SUFFIX.sub("", title))]


def item_features(
    known: pa.Table, catalogue: pa.Table, tags: pa.Table | None, cut: int, recent_days: float, max_tags: int
) -> pa.Table:
    """Catalogue metadata plus popularity statistics and tags known before ``cut``."""
    stats = (
        known.group_by("item_id")
        .aggregate([("user_id", "count"), ("rating", "mean"), ("timestamp", "min")])
        .rename_columns(["item_id", "n_interactions", "mean_rating", "first_ts"])
    )
    recent = known.filter(pc.greater_equal(known.column("timestamp"), int(cut - recent_days * DAY)))
    recent_stats = recent.group_by("item_id").aggregate([("user_id", "count")]).rename_columns(["item_id", "n_recent"])
    stats = stats.join(recent_stats, "item_id", join_type="left outer").sort_by("item_id")
    # only items with a known event: an item first seen after the cut is not in the vocabulary
    base = catalogue.drop_columns([c for c in ("tags",) if c in catalogue.column_names])
    base = base.filter(pc.is_in(base.column("item_id"), value_set=stats.column("item_id"))).sort_by("item_id")
    # (pyarrow cannot join tables carrying list columns: align by sorted id instead)
    row = np.searchsorted(stats.column("item_id").to_numpy(), base.column("item_id").to_numpy())
    table = base
    for name in ("n_interactions", "mean_rating", "first_ts", "n_recent"):
        column = stats.column(name).take(pa.array(row))
        if name.startswith("n_"):
            column = pc.cast(pc.fill_null(column, 0), pa.int64())
        table = table.append_column(name, column)
    n_users = max(len(pc.unique(known.column("user_id"))), 1)
    table = table.append_column("popularity", pc.divide(pc.cast(table.column("n_interactions"), pa.float64()), n_users))
    tokens = [title_tokens(t) for t in table.column("title").to_pylist()]
    table = table.append_column("title_tokens", pa.array(tokens, type=pa.list_(pa.string())))
    if tags is not None:
        table = table.append_column("tags", _top_tags(tags, table.column("item_id").to_numpy(), max_tags))
    return table.sort_by("item_id")


def _top_tags(tags: pa.Table, item_ids: np.ndarray, max_tags: int) -> pa.Array:
    """Each item's most frequent tags (lower-cased), as applied before the cut."""
    lowered = tags.set_column(
        tags.schema.get_field_index("tag"), "tag", pc.utf8_lower(pc.utf8_trim_whitespace(tags.column("tag")))
    )
    counts = (
        lowered.group_by(["item_id", "tag"])
        .aggregate([("user_id", "count")])
        .sort_by([("item_id", "ascending"), ("user_id_count", "descending"), ("tag", "ascending")])
    )
    per_item: dict[int, list[str]] = {}
    for item, tag in zip(counts.column("item_id").to_pylist(), counts.column("tag").to_pylist()):
        bucket = per_item.setdefault(item, [])
        if len(bucket) < max_tags and tag:
            bucket.append(tag)
    return pa.array([per_item.get(int(i), []) for i in item_ids], type=pa.list_(pa.string()))


def histories(known: pa.Table, max_len: int) -> pa.Table:
    """Each user's last ``max_len`` events as time-ordered lists (oldest first)."""
    ordered = known.sort_by([("user_id", "ascending"), ("timestamp", "ascending"), ("item_id", "ascending")])
    users = ordered.column("user_id").to_numpy()
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, users.size]
    starts = np.maximum(bounds[:-1], bounds[1:] - max_len)
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts, bounds[1:])]) if users.size else np.array([], int)
    lengths = bounds[1:] - starts
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    columns = {"user_id": pa.array(users[bounds[:-1]]) if users.size else pa.array([], pa.int64())}
    for name in ("item_id", "timestamp", "rating"):
        values = pa.array(ordered.column(name).to_numpy()[take])
        columns[f"{name}s" if name != "item_id" else "item_ids"] = pa.ListArray.from_arrays(offsets, values)
    return pa.table(columns).append_column("history_len", pa.array(lengths.astype(np.int32)))

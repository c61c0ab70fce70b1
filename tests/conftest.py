"""Shared fixtures: tiny synthetic datasets that exercise every step in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from synthetic import DAY, GENRES, T0, synthetic_events, synthetic_items, write_csv_dataset  # noqa: F401


@pytest.fixture
def prepared_dir(tmp_path: Path) -> Path:
    """A prepared-data folder (canonical Parquet tables) built from the synthetic events."""
    out = tmp_path / "prepared"
    out.mkdir()
    events = synthetic_events()
    pq.write_table(events, out / "interactions.parquet")
    pq.write_table(synthetic_items(), out / "items.parquet")
    users = np.unique(events.column("user_id").to_numpy())
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(users, pa.int64()),
                "age": pa.array((users % 50 + 18).astype(np.int32)),
                "gender": ["MF"[u % 2] for u in users],
            }
        ),
        out / "users.parquet",
    )
    tags = pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "item_id": pa.array([1, 1, 2], pa.int64()),
            "tag": ["Funny", "funny ", "dark, bleak"],
            "timestamp": pa.array([T0, T0 + 1, T0 + 200 * DAY], pa.int64()),
        }
    )
    pq.write_table(tags, out / "tags.parquet")
    return out


@pytest.fixture
def csv_dataset(tmp_path: Path) -> Path:
    """A tiny dataset directory in the ml-latest CSV format."""
    return write_csv_dataset(tmp_path / "tiny-latest")

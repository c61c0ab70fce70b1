"""The files stages hand to each other: the split's parts and the systems' top-k lists.

Kept apart from any model so that evaluation, baselines and models all read and write
them without importing one another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.errors import DataError


def read_parts(split_dir: Path, *parts: str) -> pa.Table:
    """Concatenate the named split parts (``train``, ``valid``, ``test``)."""
    tables = []
    for part in parts:
        path = Path(split_dir) / f"{part}.parquet"
        if not path.exists():
            raise DataError("split part not found; run `movierec split` first", path=path)
        tables.append(pq.read_table(path))
    return pa.concat_tables(tables)


def write_recs(path: Path, user_ids: np.ndarray, recommended: np.ndarray, items_ids: np.ndarray) -> None:
    """Write top-k lists as ``user_id, item_ids`` with external ids (padding dropped)."""
    lists = [items_ids[row[row >= 0]] for row in recommended]
    offsets = np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int32)
    values = np.concatenate(lists) if lists else np.array([], dtype=np.int64)
    table = pa.table(
        {
            "user_id": pa.array(user_ids, pa.int64()),
            "item_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64())),
        }
    )
    pq.write_table(table, path)

"""The ranking context in the served bundle, so the service needs nothing but the bundle.

Training exports what the pair features and the first stage read about the served events
(each user's history in time order, the users' activity statistics, the item
co-occurrence, the cut and the mean rating) and the users' demographics; the service loads
them back into a :class:`~movierec.models.ranking_features.RankingContext` without reading
any event table or fitting anything. Plain NumPy, SciPy and Parquet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from movierec.errors import DataError
from movierec.io import atomic_file, read_json, write_json
from movierec.models.inputs import Catalogue, UserDirectory
from movierec.models.layout import CONTEXT_ARRAYS, CONTEXT_META, USERS_TABLE
from movierec.models.ranking_features import RankingContext

FORMAT = 1


def save_context(ctx: RankingContext, directory: Path) -> None:
    """Write ``ctx``'s event-derived parts and its users' demographics (if any) into ``directory``."""
    directory = Path(directory)
    user_ids = np.array(sorted(ctx.histories), np.int64)
    lengths = np.array([ctx.histories[int(u)].size for u in user_ids], np.int64)
    items = np.concatenate([ctx.histories[int(u)] for u in user_ids]) if user_ids.size else np.array([], np.int64)
    stat_users = np.array(sorted(ctx.user_stats), np.int64)
    stats = np.array([ctx.user_stats[int(u)] for u in stat_users], np.float64).reshape(-1, 3)
    cooc = sp.csr_matrix(ctx.cooccurrence) if ctx.cooccurrence is not None else sp.csr_matrix((0, 0))
    with atomic_file(directory / CONTEXT_ARRAYS, "wb") as handle:
        np.savez_compressed(
            handle,
            item_ids=ctx.catalogue.item_id.astype(np.int64),
            history_users=user_ids,
            history_offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            history_items=items.astype(np.int64),
            stat_users=stat_users,
            stats=stats,
            cooc_data=cooc.data.astype(np.float32),
            cooc_indices=cooc.indices.astype(np.int32),
            cooc_indptr=cooc.indptr.astype(np.int64),
            cooc_shape=np.array(cooc.shape, np.int64),
        )
    write_json(
        directory / CONTEXT_META,
        {"format": FORMAT, "cut": int(ctx.cut), "global_mean": float(ctx.global_mean), "users": int(user_ids.size)},
    )
    if ctx.users is not None:
        with atomic_file(directory / USERS_TABLE, "wb") as handle:
            pq.write_table(ctx.users.to_table(), handle)


def load_users(directory: Path) -> UserDirectory | None:
    """The users' demographics exported with the context, or None when the data have none."""
    path = Path(directory) / USERS_TABLE
    if not path.exists():
        return None
    users = UserDirectory.from_table(pq.read_table(path))
    return users if users.columns else None


def load_context(
    directory: Path, catalogue: Catalogue, item_embeddings: np.ndarray, users: UserDirectory | None
) -> RankingContext:
    """The exported context over ``catalogue`` (which must be the one it was exported with).

    Raises:
        DataError: the files are missing, of another format, or for another catalogue.
    """
    directory = Path(directory)
    arrays_path, meta_path = directory / CONTEXT_ARRAYS, directory / CONTEXT_META
    for path in (arrays_path, meta_path):
        if not path.exists():
            raise DataError("the bundle has no ranking context; rebuild it with `dvc repro`", path=path)
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise DataError(f"ranking context format {meta.get('format')!r}, expected {FORMAT}", path=meta_path)
    with np.load(arrays_path) as data:
        arrays = {name: data[name] for name in data.files}
    if not np.array_equal(arrays["item_ids"], catalogue.item_id):
        raise DataError("the ranking context was exported for another catalogue than the towers'", path=arrays_path)
    offsets, items = arrays["history_offsets"], arrays["history_items"]
    histories = {int(u): items[offsets[i] : offsets[i + 1]] for i, u in enumerate(arrays["history_users"].tolist())}
    user_stats = {
        int(u): (float(c), float(m), float(d)) for u, (c, m, d) in zip(arrays["stat_users"].tolist(), arrays["stats"])
    }
    shape = tuple(int(x) for x in arrays["cooc_shape"])
    cooccurrence = (
        sp.csr_matrix((arrays["cooc_data"], arrays["cooc_indices"], arrays["cooc_indptr"]), shape=shape)
        if shape != (0, 0)
        else None
    )
    return RankingContext(
        catalogue,
        item_embeddings,
        histories,
        user_stats,
        users,
        int(meta["cut"]),
        float(meta["global_mean"]),
        cooccurrence,
    )

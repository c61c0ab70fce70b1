"""The ranking context travels in the bundle and comes back exactly as training built it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from synthetic import synthetic_events, synthetic_items

from movierec.errors import DataError
from movierec.features import item_features
from movierec.models.context_export import load_context, load_users, save_context
from movierec.models.inputs import Catalogue, UserDirectory
from movierec.models.ranking_features import RankingContext, pair_features

WIDTHS = {"genres": 4, "title": 6, "tags": 4}


def _context(with_users: bool) -> RankingContext:
    events = synthetic_events(50, 40)
    cut = int(events.column("timestamp").to_numpy().max()) + 1
    catalogue = Catalogue.from_table(item_features(events, synthetic_items(40), None, cut, 30, 5), WIDTHS)
    users = None
    if with_users:
        ids = np.arange(1, 51)
        users = UserDirectory.from_table(
            pa.table(
                {
                    "user_id": pa.array(ids, pa.int64()),
                    "age": pa.array((ids % 40 + 18).astype(np.float32)),
                    "gender": ["MF"[u % 2] for u in ids],
                }
            )
        )
    embeddings = np.random.default_rng(0).normal(size=(len(catalogue), 8)).astype(np.float32)
    return RankingContext.build(events, catalogue, embeddings, users, cut)


@pytest.mark.parametrize("with_users", [True, False])
def test_a_saved_context_loads_back_identical(tmp_path: Path, with_users: bool) -> None:
    ctx = _context(with_users)
    save_context(ctx, tmp_path)
    users = load_users(tmp_path)
    assert (users is None) == (not with_users)
    back = load_context(tmp_path, ctx.catalogue, ctx.item_embeddings, users)
    assert back.cut == ctx.cut and back.global_mean == pytest.approx(ctx.global_mean)
    assert set(back.histories) == set(ctx.histories)
    assert all(np.array_equal(back.histories[u], ctx.histories[u]) for u in ctx.histories)
    assert back.user_stats == ctx.user_stats  # float64 both ways: exact
    assert (back.cooccurrence != ctx.cooccurrence).nnz == 0
    # the pair features the service computes from it are the training side's
    user_ids = np.array(sorted(ctx.histories))[:5].repeat(4)
    rows = np.tile(np.arange(4), 5)
    query = np.random.default_rng(1).normal(size=(rows.size, 8)).astype(np.float32)
    want, got = pair_features(ctx, user_ids, rows, query), pair_features(back, user_ids, rows, query)
    for name, values in want.items():
        assert np.array_equal(values, got[name]), name


def test_a_context_for_another_catalogue_is_refused(tmp_path: Path) -> None:
    ctx = _context(False)
    save_context(ctx, tmp_path)
    shuffled = ctx.catalogue
    shuffled_ids = shuffled.item_id.copy()
    shuffled.item_id[:] = shuffled_ids[::-1]
    try:
        with pytest.raises(DataError, match="another catalogue"):
            load_context(tmp_path, shuffled, ctx.item_embeddings, None)
    finally:
        shuffled.item_id[:] = shuffled_ids
    (tmp_path / "context.npz").unlink()
    with pytest.raises(DataError, match="no ranking context"):
        load_context(tmp_path, ctx.catalogue, ctx.item_embeddings, None)

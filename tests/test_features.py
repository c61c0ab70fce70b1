"""Features come from the known past only: nothing on or after the cut reaches them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from movierec.features import build_features, title_tokens
from movierec.split import split

PARAMS = {"history_max_len": 5, "recent_days": 10, "max_tags": 3}


@pytest.fixture
def features(prepared_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    split_dir = tmp_path / "split"
    split(prepared_dir, split_dir, {"method": "temporal", "valid_frac": 0.1, "test_frac": 0.1})
    out = tmp_path / "features"
    build_features(prepared_dir, split_dir, out, PARAMS)
    return split_dir, out


def test_valid_features_use_train_only(features: tuple[Path, Path]) -> None:
    split_dir, out = features
    train = pq.read_table(split_dir / "train.parquet").to_pandas()
    valid_start = pq.read_table(split_dir / "valid.parquet").column("timestamp").to_numpy().min()
    users = pq.read_table(out / "valid" / "users.parquet").to_pandas().set_index("user_id")
    items = pq.read_table(out / "valid" / "items.parquet").to_pandas().set_index("item_id")
    hist = pq.read_table(out / "valid" / "histories.parquet").to_pandas().set_index("user_id")
    # vocabularies: exactly the users and items seen in training
    assert set(users.index) == set(train.user_id)
    assert set(items.index) == set(train.item_id)
    # statistics: counts equal the training counts
    assert (users.n_interactions == train.groupby("user_id").size().reindex(users.index)).all()
    assert (items.n_interactions == train.groupby("item_id").size().reindex(items.index)).all()
    assert users.last_ts.max() < valid_start
    # histories: only training events, time-ordered, the latest ones kept
    for user, row in hist.iterrows():
        assert all(t < valid_start for t in row.timestamps)
        assert list(row.timestamps) == sorted(row.timestamps)
        expected = train[train.user_id == user].sort_values(["timestamp", "item_id"]).item_id.tolist()[-5:]
        assert list(row.item_ids) == expected


def test_test_features_include_validation_but_not_test(features: tuple[Path, Path]) -> None:
    split_dir, out = features
    known = {
        *pq.read_table(split_dir / "train.parquet").column("user_id").to_pylist(),
        *pq.read_table(split_dir / "valid.parquet").column("user_id").to_pylist(),
    }
    test_start = pq.read_table(split_dir / "test.parquet").column("timestamp").to_numpy().min()
    users = pq.read_table(out / "test" / "users.parquet").to_pandas()
    assert set(users.user_id) == known
    assert users.last_ts.max() < test_start


def test_tags_applied_after_the_cut_are_dropped(features: tuple[Path, Path]) -> None:
    _, out = features
    items = pq.read_table(out / "valid" / "items.parquet").to_pandas().set_index("item_id")
    # item 1 was tagged "Funny" and "funny " before the cut: one normalised tag;
    # item 2's only tag was applied 200 days later, after every cut
    assert list(items.loc[1, "tags"]) == ["funny"]
    assert list(items.loc[2, "tags"]) == []


def test_title_tokens_drop_the_year() -> None:
    assert title_tokens("American President, The (1995)") == ["american", "president", "the"]
    assert title_tokens("Misérables, Les (1995)") == ["misérables", "les"]
    assert title_tokens(None) == []

"""The split leaks nothing from the future, and reports cold-start shares correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.errors import DataError, ParamsError
from movierec.split import split, temporal_boundaries

TEMPORAL = {"method": "temporal", "valid_frac": 0.1, "test_frac": 0.1}


def _parts(out: Path) -> dict[str, pa.Table]:
    return {p: pq.read_table(out / f"{p}.parquet") for p in ("train", "valid", "test")}


def test_temporal_split_orders_every_event(prepared_dir: Path, tmp_path: Path) -> None:
    report = split(prepared_dir, tmp_path / "split", TEMPORAL)
    parts = _parts(tmp_path / "split")
    train_ts, valid_ts, test_ts = (parts[p].column("timestamp").to_numpy() for p in ("train", "valid", "test"))
    assert train_ts.max() < valid_ts.min()
    assert valid_ts.max() < test_ts.min()
    total = sum(t.num_rows for t in parts.values())
    assert total == pq.read_metadata(prepared_dir / "interactions.parquet").num_rows
    # roughly 80/10/10 (ties at the cuts may move a few events later)
    assert 0.75 < parts["train"].num_rows / total <= 0.8
    assert report["valid_start"] == valid_ts.min() and report["test_start"] == test_ts.min()


def test_cold_shares_match_a_direct_count(prepared_dir: Path, tmp_path: Path) -> None:
    report = split(prepared_dir, tmp_path / "split", TEMPORAL)
    parts = _parts(tmp_path / "split")
    before_test = set(parts["train"].column("user_id").to_pylist()) | set(parts["valid"].column("user_id").to_pylist())
    test_users = set(parts["test"].column("user_id").to_pylist())
    expected = len(test_users - before_test) / len(test_users)
    assert report["test_cold_users_share"] == pytest.approx(expected, abs=1e-6)
    assert 0 < report["test_cold_users_share"] < 1  # the fixture has both kinds


def test_boundaries_put_ties_on_the_later_side() -> None:
    ts = np.array([1, 2, 3, 4, 5, 5, 5, 5, 9, 10])
    valid_start, test_start = temporal_boundaries(ts, 0.2, 0.1)
    assert valid_start == 5 and test_start == 10
    assert (ts < valid_start).sum() == 4  # all the 5s moved to validation


def test_concentrated_timestamps_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    table = pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "item_id": pa.array([1, 1, 1], pa.int64()),
            "rating": pa.array([1.0, 2.0, 3.0], pa.float32()),
            "timestamp": pa.array([7, 7, 7], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "p" / "interactions.parquet")
    with pytest.raises(DataError, match="too concentrated"):
        split(tmp_path / "p", tmp_path / "out", TEMPORAL)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary folder left behind


def test_leave_last_n_holds_out_each_users_latest(prepared_dir: Path, tmp_path: Path) -> None:
    split(prepared_dir, tmp_path / "split", {"method": "leave_last_n", "n": 2})
    parts = _parts(tmp_path / "split")
    events = pq.read_table(prepared_dir / "interactions.parquet").to_pandas()
    test = parts["test"].to_pandas()
    assert (test.groupby("user_id").size() == 2).all()
    for user, group in events.groupby("user_id"):
        latest = set(group.sort_values("timestamp").item_id.iloc[-2:])
        assert set(test[test.user_id == user].item_id) == latest


@pytest.mark.parametrize(
    "bad",
    [{"method": "random"}, {"valid_frac": 0.6, "test_frac": 0.5}, {"test_frac": 0}, {"method": "leave_last_n", "n": 0}],
)
def test_bad_parameters_are_named(prepared_dir: Path, tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ParamsError, match="split"):
        split(prepared_dir, tmp_path / "split", {**TEMPORAL, **bad})
    assert not (tmp_path / "split").exists()


def test_missing_input_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="interactions.parquet"):
        split(tmp_path, tmp_path / "split", TEMPORAL)


USER_TEMPORAL = {"method": "user_temporal", "valid_frac": 0.1, "test_frac": 0.2, "min_events": 5}


def test_user_temporal_holds_out_each_users_latest_events(prepared_dir: Path, tmp_path: Path) -> None:
    report = split(prepared_dir, tmp_path / "split", USER_TEMPORAL)
    parts = _parts(tmp_path / "split")
    events = pq.read_table(prepared_dir / "interactions.parquet").to_pandas()
    sizes = events.groupby("user_id").size()
    frames = {p: t.to_pandas() for p, t in parts.items()}
    assert sum(len(f) for f in frames.values()) == len(events)
    for user, n in sizes.items():
        got = {p: f[f.user_id == user] for p, f in frames.items()}
        if n < 5:
            assert len(got["valid"]) == 0 and len(got["test"]) == 0
            continue
        assert len(got["test"]) == max(1, round(0.2 * n))
        assert len(got["valid"]) == max(1, round(0.1 * n))
        # the user's own events keep their time order across the parts
        assert got["train"].timestamp.max() <= got["valid"].timestamp.min()
        assert got["valid"].timestamp.max() <= got["test"].timestamp.min()
    assert report["method"] == "user_temporal" and report["test_cold_users_share"] == 0.0


def test_user_temporal_counts_rounding_and_minimum() -> None:
    from movierec.split import user_temporal_counts

    n_test, n_valid = user_temporal_counts(np.array([3, 4, 5, 10, 11, 100]), 0.1, 0.2, 5)
    assert n_test.tolist() == [0, 0, 1, 2, 2, 20]
    assert n_valid.tolist() == [0, 0, 1, 1, 1, 10]


def test_method_params_flattens_the_nested_section() -> None:
    from movierec.split import method_params

    section = {"method": "user_temporal", "user_temporal": {"test_frac": 0.2}, "temporal": {"test_frac": 0.1}}
    assert method_params(section) == {"method": "user_temporal", "test_frac": 0.2}
    assert method_params(section, "temporal") == {"method": "temporal", "test_frac": 0.1}
    with pytest.raises(ParamsError, match="split.temporal"):
        method_params({"temporal": 3}, "temporal")


def test_user_temporal_rejects_bad_settings(prepared_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="min_events"):
        split(prepared_dir, tmp_path / "split", {**USER_TEMPORAL, "min_events": 2})
    with pytest.raises(ParamsError, match="below 1"):
        split(prepared_dir, tmp_path / "split", {**USER_TEMPORAL, "valid_frac": 0.5, "test_frac": 0.5})
    assert not (tmp_path / "split").exists()

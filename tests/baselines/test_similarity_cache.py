"""The item-kNN similarity cache: a hit is the very matrix a fit computes, found only by the
same inputs, written atomically, pruned, and used only inside ``kept_in``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from synthetic import synthetic_events

import movierec.baselines.similarity_cache as similarity_cache
from movierec.baselines.itemknn import ItemKNN
from movierec.baselines.run import run_baselines
from movierec.data.matrix import InteractionMatrix
from movierec.paths import ProjectPaths
from movierec.split import method_params, split


def _data(seed: int = 0) -> InteractionMatrix:
    return InteractionMatrix.from_table(synthetic_events(n_users=80, n_items=50, seed=seed))


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def _no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ItemKNN, data: InteractionMatrix) -> sp.csr_matrix:
        raise AssertionError("computed although the cache holds these similarities")

    monkeypatch.setattr(ItemKNN, "_compute", refuse)


def test_a_second_fit_reads_the_matrix_the_first_computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    plain = ItemKNN(neighbours=7, shrink=10.0).fit(data).similarity_
    assert not tmp_path.joinpath("cache").exists()
    with similarity_cache.kept_in(tmp_path / "cache"):
        first = ItemKNN(neighbours=7, shrink=10.0).fit(data).similarity_
        assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
        _no_compute(monkeypatch)
        second = ItemKNN(neighbours=7, shrink=10).fit(_data()).similarity_  # equal inputs, int shrink
    _same(first, plain)
    _same(second, plain)
    assert not list((tmp_path / "cache").glob("*tmp*")), "a temporary file was left behind"
    with pytest.raises(AssertionError, match="computed although"):  # after the block the cache is not in use
        ItemKNN(neighbours=7, shrink=10.0).fit(data)


@pytest.mark.parametrize(
    "other",
    [
        {"data_seed": 1},  # other events
        {"neighbours": 8},
        {"shrink": 0.0},
        {"block": 16},
    ],
)
def test_other_inputs_are_computed_not_read(tmp_path: Path, other: dict[str, float]) -> None:
    params = {"neighbours": 7, "shrink": 10.0, "block": None, "data_seed": 0} | other
    with similarity_cache.kept_in(tmp_path):
        ItemKNN(neighbours=7, shrink=10.0).fit(_data())
        data = _data(seed=int(params.pop("data_seed")))
        got = ItemKNN(**params).fit(data).similarity_
    assert len(list(tmp_path.glob("*.npz"))) == 2
    _same(got, ItemKNN(**params).fit(data).similarity_)


def test_an_unreadable_file_is_computed_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data()
    with similarity_cache.kept_in(tmp_path):
        expected = ItemKNN(neighbours=5).fit(data).similarity_
        (kept,) = tmp_path.glob("*.npz")
        kept.write_bytes(b"not a numpy archive")
        got = ItemKNN(neighbours=5).fit(data).similarity_
    _same(got, expected)
    assert "unreadable" in capsys.readouterr().err
    with np.load(kept) as parts:  # rewritten whole
        assert set(parts.files) == {"data", "indices", "indptr", "shape"}


def test_only_the_most_recently_used_files_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity_cache, "KEEP", 3)
    data = _data()
    with similarity_cache.kept_in(tmp_path):
        for n, neighbours in enumerate((2, 3, 4, 5, 6)):
            ItemKNN(neighbours=neighbours).fit(data)
            newest = max(tmp_path.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
            os.utime(newest, (1000 + n, 1000 + n))  # distinct, ordered times without sleeping
        ItemKNN(neighbours=4).fit(data)  # a hit makes the oldest kept file the newest
        ItemKNN(neighbours=7).fit(data)
    kept = {similarity_cache.digest(data.matrix, neighbours=k, shrink=0.0, block=None) for k in (4, 6, 7)}
    assert {p.stem for p in tmp_path.glob("*.npz")} == kept


def test_the_baselines_write_and_a_rerun_reads_with_identical_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of the baselines over the project's cache: the second computes no similarity
    and writes the same lists; the cache lies where the layout says."""
    paths = ProjectPaths.under(tmp_path)
    paths.prepared.mkdir(parents=True)
    pq.write_table(synthetic_events(n_users=60, n_items=40), paths.prepared / "interactions.parquet")
    split(paths.prepared, paths.split, method_params({"method": "user_temporal"}, "user_temporal"))
    params = {
        "tune_metric": "ndcg@10",
        "most_popular": {"window_days": [None]},
        "item_knn": {"neighbours": [5, 10], "shrink": [0]},
        "ease": {"l2": [10]},
        "ease_recency": {"l2": [10], "recency_tau": [3]},
        "biases": {"reg": [5]},
        "ks": [10],
        "min_rating": None,
    }
    with similarity_cache.kept_in(paths.similarity_cache):
        run_baselines(paths.split, tmp_path / "first", params)
        assert paths.similarity_cache == tmp_path / "data" / "cache" / "item_knn"
        assert len(list(paths.similarity_cache.glob("*.npz"))) == 3  # two on train, the chosen on train+valid
        _no_compute(monkeypatch)
        run_baselines(paths.split, tmp_path / "second", params)
    assert pq.read_table(tmp_path / "first" / "item_knn.parquet").equals(
        pq.read_table(tmp_path / "second" / "item_knn.parquet")
    )


def test_a_kept_file_is_readable_by_others_like_the_other_outputs(tmp_path: Path) -> None:
    with similarity_cache.kept_in(tmp_path):
        ItemKNN(neighbours=5).fit(_data())
    (kept,) = tmp_path.glob("*.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert kept.stat().st_mode & 0o777 == 0o666 & ~umask  # as the project's other atomic writes

"""The synthetic generator writes ml-latest files the pipeline reads, with the structure it promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.cli import main
from movierec.data.prepare import prepare
from movierec.data.synth import SynthConfig, parse_count, write_synthetic
from movierec.errors import ParamsError

CONFIG = SynthConfig(users=300, items=600, events=12_000, seed=3)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic(out, CONFIG)
    return out


def test_files_are_in_the_ml_latest_layout_and_prepare_reads_them(synth_dir: Path, tmp_path: Path) -> None:
    assert {p.name for p in synth_dir.iterdir()} >= {"ratings.csv", "movies.csv", "tags.csv", "links.csv"}
    summary = prepare(synth_dir, tmp_path / "prepared")
    assert summary["format"] == "csv"
    ratings = pd.read_csv(synth_dir / "ratings.csv")
    assert summary["interactions"] == len(ratings)
    assert abs(len(ratings) - CONFIG.events) / CONFIG.events < 0.08
    assert "SYNTHETIC" in (synth_dir / "README.txt").read_text()


def test_a_seed_gives_the_same_files_and_another_seed_differs(synth_dir: Path, tmp_path: Path) -> None:
    write_synthetic(tmp_path / "again", CONFIG)
    assert (tmp_path / "again" / "ratings.csv").read_bytes() == (synth_dir / "ratings.csv").read_bytes()
    write_synthetic(tmp_path / "other", SynthConfig(users=300, items=600, events=12_000, seed=4))
    assert (tmp_path / "other" / "ratings.csv").read_bytes() != (synth_dir / "ratings.csv").read_bytes()


def test_the_data_have_long_tails_time_order_and_no_repeats(synth_dir: Path) -> None:
    ratings = pd.read_csv(synth_dir / "ratings.csv")
    per_user = ratings.groupby("userId").size()
    per_item = ratings.groupby("movieId").size().sort_values(ascending=False)
    assert per_user.min() >= CONFIG.min_events
    assert per_user.max() > 4 * per_user.median()  # long-tailed activity
    assert per_item.iloc[: len(per_item) // 10].sum() > 0.3 * len(ratings)  # top 10% of items: a large share
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings.rating.between(0.5, 5.0).all() and (ratings.rating * 2 % 1 == 0).all()
    movies = pd.read_csv(synth_dir / "movies.csv")
    assert set(ratings.movieId) <= set(movies.movieId)
    assert movies.title.str.match(r".+ \(\d{4}\)$").all()


def test_recent_items_predict_the_next_one_better_than_old_ones(synth_dir: Path) -> None:
    """Short-term interest: an event shares its cluster's genres with the previous event
    more often than with an event 30 steps earlier."""
    ratings = pd.read_csv(synth_dir / "ratings.csv").sort_values(["userId", "timestamp"], kind="stable")
    genres = pd.read_csv(synth_dir / "movies.csv").set_index("movieId").genres
    seq = ratings.movieId.map(genres).to_numpy()
    users = ratings.userId.to_numpy()

    def same(lag: int) -> float:
        ok = users[lag:] == users[:-lag]
        return float(np.mean(seq[lag:][ok] == seq[:-lag][ok]))

    assert same(1) > 1.5 * same(30)


def test_bad_settings_are_refused_with_the_flag_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="--events"):
        write_synthetic(tmp_path / "x", SynthConfig(users=100, items=100, events=10))
    with pytest.raises(ParamsError, match="--items"):
        write_synthetic(tmp_path / "x", SynthConfig(users=10, items=5, events=100))
    assert not (tmp_path / "x").exists()
    assert (
        main(["data", "synth", "--users", "0", "--items", "100", "--events", "10", "--out", str(tmp_path / "y")]) == 2
    )


@pytest.mark.parametrize(
    ("text", "count"), [("25M", 25_000_000), ("1.5M", 1_500_000), ("50k", 50_000), ("1_000", 1000), (7, 7)]
)
def test_counts_are_read_as_people_write_them(text: str | int, count: int) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["lots", "1.5", "0", "2.5K7"])
def test_a_count_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ParamsError, match="count"):
        parse_count(text)


def test_a_million_item_catalogue_lists_every_item_with_all_items(tmp_path: Path) -> None:
    summary = write_synthetic(
        tmp_path / "big", SynthConfig(users=100, items=1_000_000, events=2_000, seed=1, all_items=True), progress=False
    )
    movies = pd.read_csv(tmp_path / "big" / "movies.csv")
    assert len(movies) == 1_000_000 == summary["catalogue"] and movies.movieId.is_unique
    assert summary["items"] == pd.read_csv(tmp_path / "big" / "ratings.csv").movieId.nunique() < 1_000_000
    assert len(pd.read_csv(tmp_path / "big" / "links.csv")) == 1_000_000
    assert movies.genres.str.len().gt(0).all()


def test_the_cli_takes_a_named_shape_from_params_and_flags_over_it(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  shapes:\n    tiny: {users: 40, items: 300, events: 2000}\n", encoding="utf-8")
    out = tmp_path / "tiny"
    assert (
        main(["--params", str(params), "data", "synth", "--shape", "tiny", "--events", "1.2K", "--out", str(out)]) == 0
    )
    summary = pd.read_json(out / "synth.json", typ="series")
    assert summary["settings"]["users"] == 40 and summary["settings"]["events"] == 1200
    assert main(["--params", str(params), "data", "synth", "--shape", "huge", "--out", str(tmp_path / "x")]) == 2

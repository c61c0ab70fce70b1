"""Tests for the ML-1M / ML-10M ("::"-separated) reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.data.formats import ml1m
from movierec.data.schema import INTERACTIONS_SCHEMA
from movierec.errors import DataError

MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Misérables, Les (1995)::Drama|Musical",
    "3::Some Series (2006-2007)::Drama",
    "4::Untitled Project::Documentary",
]
RATINGS = ["1::1::5::978300760", "1::2::3::978302109", "2::3::4::978301968"]
USERS = ["1::F::1::10::48067", "2::M::56::16::70072"]


def write_dat(root: Path, name: str, lines: list[str], encoding: str = "latin-1") -> None:
    """Write a "::" file with the given encoding."""
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(("\n".join(lines) + "\n").encode(encoding))


def write_ml1m(root: Path, ratings=RATINGS, movies=MOVIES, users=USERS) -> Path:
    """Write a tiny ML-1M directory (latin-1, like the real files)."""
    write_dat(root, "ratings.dat", ratings)
    write_dat(root, "movies.dat", movies)
    if users is not None:
        write_dat(root, "users.dat", users)
    return root


def test_read_interactions_and_scale(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path)
    batches = list(ml1m.read_interactions(root))
    assert all(b.schema.equals(INTERACTIONS_SCHEMA) for b in batches)
    assert [r["rating"] for b in batches for r in b.to_pylist()] == [5.0, 3.0, 4.0]
    source = ml1m.interactions_source(root)
    assert (source.rating_min, source.rating_step, source.header_lines) == (1.0, 1.0, 0)


def test_read_items(tmp_path: Path) -> None:
    items = {r["item_id"]: r for r in ml1m.read_items(write_ml1m(tmp_path)).to_pylist()}
    assert items[1]["genres"] == ["Animation", "Children's", "Comedy"]
    assert items[2]["title"] == "Misérables, Les (1995)" and items[2]["year"] == 1995
    assert items[3]["year"] == 2006
    assert items[4]["year"] is None
    assert "tags" not in ml1m.read_items(tmp_path).column_names


def test_read_users_maps_occupations(tmp_path: Path) -> None:
    users = ml1m.read_users(write_ml1m(tmp_path)).to_pylist()
    assert users[0] == {"user_id": 1, "age": 1, "gender": "F", "occupation": "K-12 student", "zip_code": "48067"}
    assert users[1]["occupation"] == "self-employed"
    write_dat(tmp_path, "users.dat", ["1::F::1::21::48067"])
    with pytest.raises(DataError, match=r"users.dat, line 1: unknown occupation code 21"):
        ml1m.read_users(tmp_path)


def test_ml10m_layout_with_tags_and_half_stars(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path, ratings=["1::1::4.5::1", "2::2::0.5::2"], users=None)
    write_dat(root, "movies.dat", [*MOVIES[:1], "5::Amélie (2001)::(no genres listed)"], encoding="utf-8")
    write_dat(root, "tags.dat", ["1::1::Pixar::10", "2::1:: pixar ::11", "2::5::funny::12"], encoding="utf-8")
    source = ml1m.interactions_source(root)
    assert (source.rating_min, source.rating_step) == (0.5, 0.5)
    assert ml1m.read_users(root) is None
    tags = ml1m.read_tags(root)
    assert tags.num_rows == 3 and tags.column("tag").to_pylist()[1] == " pixar "
    items = {r["item_id"]: r for r in ml1m.read_items(root).to_pylist()}
    assert items[5]["title"] == "Amélie (2001)" and items[5]["genres"] == []
    assert items[1]["tags"] == ["pixar"] and items[5]["tags"] == ["funny"]


def test_streams_in_chunks_with_exact_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ml1m, "CHUNK_LINES", 3)
    ratings = [f"{i}::{i % 4 + 1}::{i % 5 + 1}::{1000 + i}" for i in range(1, 11)]
    root = write_ml1m(tmp_path, ratings=ratings)
    batches = list(ml1m.read_interactions(root))
    assert [b.num_rows for b in batches] == [3, 3, 3, 1]
    assert [r["user_id"] for b in batches for r in b.to_pylist()] == list(range(1, 11))

    write_dat(root, "ratings.dat", ratings[:8] + ["9::1::x::1009"] + ratings[9:])
    with pytest.raises(DataError, match=r"ratings.dat, line 9: malformed row: rating is not a number: 'x'"):
        list(ml1m.read_interactions(root))
    write_dat(root, "ratings.dat", ratings[:7] + ["8::1::1009"] + ratings[8:])
    with pytest.raises(DataError, match=r"ratings.dat, line 8: malformed row: expected 4 fields, found 3"):
        list(ml1m.read_interactions(root))
    write_dat(root, "ratings.dat", ratings[:6] + [""] + ratings[7:])
    with pytest.raises(DataError, match=r"ratings.dat, line 7: malformed row: user_id is missing"):
        list(ml1m.read_interactions(root))


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [
        ("5::Two fields only", "expected 3 fields, found 2"),
        ("x::Bad id (1995)::Drama", "MovieID is not an integer: 'x'"),
        ("1::Again (1995)::Drama", "duplicate item id 1 (first on line 1)"),
    ],
)
def test_movie_errors_name_file_and_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    root = write_ml1m(tmp_path, movies=[*MOVIES, bad_row])
    with pytest.raises(DataError) as info:
        ml1m.read_items(root)
    assert "movies.dat, line 5" in str(info.value) and needle in str(info.value)

"""Tests for the ml-latest CSV family reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.data.formats import csv_family, streaming
from movierec.data.schema import INTERACTIONS_SCHEMA
from movierec.errors import DataError

MOVIES = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '11,"American President, The (1995)",Comedy|Drama|Romance',
    '3,"""Great Performances"" Cats (1998)",Musical',
    "4,Babylon 5,Sci-Fi",
    "5,Ready Player One (2018) ,Action",
    "6,Fawlty Towers (1975–1979),Comedy",
    "7,Misérables (2012),(no genres listed)",
]
RATINGS = ["userId,movieId,rating,timestamp", "1,1,4.0,964982703", "1,11,0.5,964981247", "2,3,5.0,964982224"]
TAGS = [
    "userId,movieId,tag,timestamp",
    '2,1,"funny, clever",1445714994',
    "2,1,Pixar,1445714996",
    "3,1, pixar ,1",
    "3,3,cats,2",
]
LINKS = ["movieId,imdbId,tmdbId", "1,0114709,862", "11,0112346,", "3,0173714,"]


def write_csv(root: Path, name: str, lines: list[str]) -> None:
    """Write a UTF-8 CSV file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_latest(root: Path, ratings=RATINGS, movies=MOVIES, tags=TAGS, links=LINKS) -> Path:
    """Write a tiny ml-latest-small-like directory; ``None`` leaves a file out."""
    for name, lines in (("ratings.csv", ratings), ("movies.csv", movies), ("tags.csv", tags), ("links.csv", links)):
        if lines is not None:
            write_csv(root, name, lines)
    return root


def test_read_interactions(tmp_path: Path) -> None:
    batches = list(csv_family.read_interactions(write_latest(tmp_path)))
    assert all(b.schema.equals(INTERACTIONS_SCHEMA) for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    assert rows[1] == {"user_id": 1, "item_id": 11, "rating": 0.5, "timestamp": 964981247}


def test_read_items_awkward_titles(tmp_path: Path) -> None:
    items = {r["item_id"]: r for r in csv_family.read_items(write_latest(tmp_path)).to_pylist()}
    assert items[11]["title"] == "American President, The (1995)" and items[11]["year"] == 1995
    assert items[3]["title"] == '"Great Performances" Cats (1998)' and items[3]["year"] == 1998
    assert items[4]["year"] is None
    assert items[5]["title"] == "Ready Player One (2018)" and items[5]["year"] == 2018
    assert items[6]["year"] == 1975
    assert items[7]["genres"] == [] and items[7]["title"] == "Misérables (2012)"
    assert items[1]["genres"][0] == "Adventure"


def test_tags_and_links(tmp_path: Path) -> None:
    root = write_latest(tmp_path)
    tags = csv_family.read_tags(root)
    assert tags.column("tag").to_pylist()[0] == "funny, clever"
    items = {r["item_id"]: r for r in csv_family.read_items(root).to_pylist()}
    assert items[1]["tags"] == ["funny, clever", "pixar"]
    assert items[3]["tags"] == ["cats"] and items[4]["tags"] == []
    assert (items[1]["imdb_id"], items[1]["tmdb_id"]) == (114709, 862)
    assert (items[11]["imdb_id"], items[11]["tmdb_id"]) == (112346, None)
    assert items[4]["imdb_id"] is None


def test_optional_files_absent(tmp_path: Path) -> None:
    root = write_latest(tmp_path, tags=None, links=None)
    assert csv_family.read_tags(root) is None and csv_family.read_users(root) is None
    assert csv_family.read_items(root).column_names == ["item_id", "title", "year", "genres"]


def test_streams_in_blocks_with_exact_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "BLOCK_SIZE", 1024)
    rows = [f"{u},{u % 7 + 1},{(u % 10 + 1) / 2},{1_000_000 + u}" for u in range(1, 3001)]
    root = write_latest(tmp_path, ratings=[RATINGS[0], *rows])
    batches = list(csv_family.read_interactions(root))
    assert len(batches) > 10
    assert [r["user_id"] for b in batches for r in b.to_pylist()] == list(range(1, 3001))

    late = rows[:2800] + ["2801,3,4.0,abc"] + rows[2801:]
    write_latest(root, ratings=[RATINGS[0], *late])
    with pytest.raises(DataError, match=r"ratings.csv, line 2802: .*timestamp is not an integer: 'abc'"):
        list(csv_family.read_interactions(root))
    late = rows[:2899] + ["2900,3,4.0"] + rows[2900:]
    write_latest(root, ratings=[RATINGS[0], *late])
    with pytest.raises(DataError, match=r"ratings.csv, line 2901: malformed row: expected 4 fields, found 3"):
        list(csv_family.read_interactions(root))


def test_bad_header(tmp_path: Path) -> None:
    root = write_latest(tmp_path, ratings=["user,movie,rating,timestamp", "1,1,4.0,1"])
    with pytest.raises(DataError, match=r"ratings.csv, line 1: unexpected header"):
        list(csv_family.read_interactions(root))


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [
        ("8,Too,many,fields", "expected 3 fields, found 4"),
        ("x,Bad id (1995),Drama", "movieId is not an integer: 'x'"),
        ("11,Duplicate (1995),Drama", "duplicate item id 11 (first on line 3)"),
    ],
)
def test_movie_errors_name_file_and_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    root = write_latest(tmp_path, movies=[*MOVIES, bad_row])
    with pytest.raises(DataError) as info:
        csv_family.read_items(root)
    assert "movies.csv, line 9" in str(info.value) and needle in str(info.value)


def test_multiline_quoted_title_keeps_line_numbers(tmp_path: Path) -> None:
    root = write_latest(tmp_path, movies=[MOVIES[0], '1,"Two\nLines (1990)",Drama', "x,Bad,Drama"])
    with pytest.raises(DataError, match=r"movies.csv, line 4: .*movieId is not an integer"):
        csv_family.read_items(root)


def test_undecodable_text_names_encoding_and_line(tmp_path: Path) -> None:
    root = write_latest(tmp_path)
    (root / "movies.csv").write_bytes(b"movieId,title,genres\n1,Ok (1995),Drama\n2,Mis\xe9rables (1995),Drama\n")
    with pytest.raises(DataError, match=r"movies.csv, line 3: cannot decode byte 0xe9: .*utf-8"):
        csv_family.read_items(root)


def test_tag_errors(tmp_path: Path) -> None:
    root = write_latest(tmp_path, tags=[*TAGS, "4,1,good,yesterday"])
    with pytest.raises(DataError, match=r"tags.csv, line 6: .*timestamp is not an integer"):
        csv_family.read_tags(root)

"""Tests for the ML-100K reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.data.formats import ml100k
from movierec.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
from movierec.errors import DataError

FLAGS_DRAMA = "|".join("1" if i == 8 else "0" for i in range(19))
FLAGS_UNKNOWN = "|".join("1" if i == 0 else "0" for i in range(19))
FLAGS_ANIM_COMEDY = "|".join("1" if i in (3, 5) else "0" for i in range(19))
ITEMS = [
    f"1|Toy Story (1995)|01-Jan-1995||http://imdb/toy|{FLAGS_ANIM_COMEDY}",
    f"2|Misérables, Les (1995)|01-Jan-1995||http://imdb/mis|{FLAGS_DRAMA}",
    f"3|Old Movie (1931)|||http://imdb/old|{FLAGS_DRAMA}",
    f"267|unknown||||{FLAGS_UNKNOWN}",
]
DATA = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t3\t1\t881250951"]
USERS = ["1|24|M|technician|85711", "2|53|F|other|T8H1N"]


def write_ml100k(root: Path, data=DATA, items=ITEMS, users=USERS, genre: list[str] | None = None) -> Path:
    """Write a tiny ML-100K directory (latin-1, like the real files)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_bytes(("\n".join(data) + "\n").encode("latin-1"))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    if users is not None:
        (root / "u.user").write_bytes(("\n".join(users) + "\n").encode("latin-1"))
    if genre is not None:
        (root / "u.genre").write_bytes(("\n".join(genre) + "\n\n").encode("latin-1"))
    return root


def test_read_interactions(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path)
    batches = list(ml100k.read_interactions(root))
    assert all(b.schema.equals(INTERACTIONS_SCHEMA) for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    assert rows[0] == {"user_id": 1, "item_id": 1, "rating": 5.0, "timestamp": 881250949}
    assert len(rows) == 3


def test_read_items_awkward_rows(tmp_path: Path) -> None:
    items = ml100k.read_items(write_ml100k(tmp_path))
    assert items.schema.equals(ITEMS_SCHEMA)
    by_id = {r["item_id"]: r for r in items.to_pylist()}
    assert by_id[1]["genres"] == ["Animation", "Comedy"]
    assert by_id[2]["title"] == "Misérables, Les (1995)"
    assert by_id[3]["year"] == 1931  # empty release date: year from the title
    assert by_id[267] == {"item_id": 267, "title": "unknown", "year": None, "genres": ["unknown"]}


def test_genre_names_come_from_u_genre(tmp_path: Path) -> None:
    names = list(ml100k.GENRES)
    names[3] = "Cartoon"
    genre = [f"{name}|{i}" for i, name in enumerate(names)]
    items = ml100k.read_items(write_ml100k(tmp_path, genre=genre))
    assert items.to_pylist()[0]["genres"] == ["Cartoon", "Comedy"]


def test_read_users(tmp_path: Path) -> None:
    users = ml100k.read_users(write_ml100k(tmp_path)).to_pylist()
    assert users[1] == {"user_id": 2, "age": 53, "gender": "F", "occupation": "other", "zip_code": "T8H1N"}
    assert ml100k.read_users(write_ml100k(tmp_path / "nouser", users=None)) is None
    assert ml100k.read_tags(tmp_path) is None


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [
        (f"4|Short row|01-Jan-1995||{FLAGS_DRAMA}", "expected 24 fields, found 23"),
        (f"x|Bad id (1995)|01-Jan-1995||url|{FLAGS_DRAMA}", "not an integer"),
        (f"4|Bad date (1995)|1995/01/01||url|{FLAGS_DRAMA}", "release date"),
        (f"4|Bad flag (1995)|01-Jan-1995||url|{FLAGS_DRAMA.replace('1', '2')}", "genre flags"),
        (f"2|Duplicate (1995)|01-Jan-1995||url|{FLAGS_DRAMA}", "duplicate item id 2 (first on line 2)"),
    ],
)
def test_item_errors_name_file_and_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    root = write_ml100k(tmp_path, items=[*ITEMS, bad_row])
    with pytest.raises(DataError) as info:
        ml100k.read_items(root)
    assert "u.item, line 5" in str(info.value)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [("3\t1\t4", "expected 4 fields, found 3"), ("3\tx\t4\t1", "item_id is not an integer: 'x'")],
)
def test_data_errors_name_file_and_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    root = write_ml100k(tmp_path, data=[*DATA, bad_row])
    with pytest.raises(DataError, match=needle) as info:
        list(ml100k.read_interactions(root))
    assert "u.data, line 4" in str(info.value)


def test_missing_u_item(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path)
    (root / "u.item").unlink()
    with pytest.raises(DataError, match="required file u.item is missing"):
        ml100k.read_items(root)

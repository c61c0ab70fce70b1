"""Tests for format detection and ``prepare``: outputs, summary, validation, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from movierec.data.formats import detect_format, streaming
from movierec.data.prepare import prepare
from movierec.data.schema import INTERACTIONS_SCHEMA, TAGS_SCHEMA, USERS_SCHEMA
from movierec.errors import DataError

DRAMA = "|".join("1" if i == 8 else "0" for i in range(19))


def write(root: Path, name: str, lines: list[str], encoding: str = "utf-8") -> None:
    """Write ``lines`` (newline-terminated) to ``root / name``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes("".join(line + "\n" for line in lines).encode(encoding))


def ml100k_dir(root: Path, data: list[str] | None = None) -> Path:
    """A tiny ML-100K directory: two users, two movies."""
    items = [f"1|Misérables, Les (1995)|01-Jan-1995||url|{DRAMA}", f"2|Other (1996)|||url|{DRAMA}"]
    write(root, "u.item", items, "latin-1")
    write(root, "u.user", ["1|24|M|technician|85711", "2|53|F|other|94043"], "latin-1")
    write(root, "u.data", data or ["1\t1\t5\t881250949", "2\t2\t1\t891717742", "1\t2\t3\t881250950"])
    return root


def ml1m_dir(root: Path, ratings: list[str] | None = None) -> Path:
    """A tiny ML-1M directory."""
    write(root, "movies.dat", ["1::Toy Story (1995)::Comedy", "2::Heat (1995)::Action"], "latin-1")
    write(root, "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"], "latin-1")
    write(root, "ratings.dat", ratings or ["1::1::5::978300760", "2::2::3::978302109"])
    return root


def csv_dir(root: Path, ratings: list[str] | None = None) -> Path:
    """A tiny ml-latest-small-like directory, with tags and links."""
    movies = ["movieId,title,genres", '1,"American President, The (1995)",Comedy', "2,X,(no genres listed)"]
    write(root, "movies.csv", movies)
    write(root, "tags.csv", ["userId,movieId,tag,timestamp", '7,1,"Funny, sad",1', '7,1," funny, sad ",2'])
    write(root, "links.csv", ["movieId,imdbId,tmdbId", "1,0112346,", "2,1,2"])
    write(root, "ratings.csv", ["userId,movieId,rating,timestamp", *(ratings or ["7,1,4.5,1000", "9,2,0.5,2000"])])
    return root


def recbole_dir(root: Path, inter: list[str] | None = None) -> Path:
    """Tiny RecBole atomic files."""
    item_header = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
    write(root, "ml.item", [item_header, "5\tA\t1995\tDrama"])
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    write(root, "ml.inter", [header, *(inter or ["1\t5\t4.2\t10"])])
    return root


@pytest.mark.parametrize(
    ("make", "fmt"), [(ml100k_dir, "ml-100k"), (ml1m_dir, "ml-1m"), (csv_dir, "csv"), (recbole_dir, "recbole")]
)
def test_detect_format(tmp_path: Path, make, fmt: str) -> None:
    assert detect_format(make(tmp_path / "raw")) == fmt


def test_detect_unknown_lists_expected_files(tmp_path: Path) -> None:
    write(tmp_path / "raw", "notes.txt", ["hello"])
    with pytest.raises(DataError) as info:
        detect_format(tmp_path / "raw")
    assert "raw" in str(info.value)
    for name in ("u.data", "ratings.dat", "ratings.csv", "*.inter"):
        assert name in str(info.value)


def test_prepare_ml100k(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    summary = prepare(ml100k_dir(tmp_path / "ml-100k"), out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary == {
        "format": "ml-100k",
        "source": "ml-100k",
        "interactions": 3,
        "users": 2,
        "items": 2,
        "tags": 0,
        "rating_min": 1.0,
        "rating_max": 5.0,
        "timestamp_min": "1997-12-04",
        "timestamp_max": "1998-04-04",
    }
    assert pq.read_schema(out / "interactions.parquet").equals(INTERACTIONS_SCHEMA)
    assert pq.read_table(out / "users.parquet").column_names == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert pq.read_table(out / "items.parquet").column("title").to_pylist()[0] == "Misérables, Les (1995)"
    assert not (out / "tags.parquet").exists()


def test_prepare_csv_family(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    summary = prepare(csv_dir(tmp_path / "raw"), out, fmt="csv")
    assert [summary[k] for k in ("interactions", "users", "items", "tags")] == [2, 2, 2, 2]
    users = pq.read_table(out / "users.parquet")
    assert users.schema.equals(USERS_SCHEMA) and users.column("user_id").to_pylist() == [7, 9]
    assert pq.read_schema(out / "tags.parquet").equals(TAGS_SCHEMA)
    items = pq.read_table(out / "items.parquet").to_pylist()
    assert items[0]["tags"] == ["funny, sad"] and items[0]["tmdb_id"] is None and items[1]["genres"] == []


@pytest.mark.parametrize("make", [ml1m_dir, recbole_dir])
def test_prepare_other_formats(tmp_path: Path, make) -> None:
    summary = prepare(make(tmp_path / "raw"), tmp_path / "out")
    assert summary["interactions"] >= 1
    assert pq.read_table(tmp_path / "out" / "interactions.parquet").num_rows == summary["interactions"]


def test_prepare_streams_batches_and_reports_late_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "BLOCK_SIZE", 512)
    rows = [f"7,{i % 2 + 1},{(i % 10 + 1) / 2},{1000 + i}" for i in range(2000)]
    summary = prepare(csv_dir(tmp_path / "raw", ratings=rows), tmp_path / "out")
    assert summary["interactions"] == 2000
    assert pq.ParquetFile(tmp_path / "out" / "interactions.parquet").metadata.num_row_groups > 10
    rows[1900] = "7,1,4.25,1"
    with pytest.raises(DataError, match=r"ratings.csv, line 1902: rating 4.25 out of range: expected half stars"):
        prepare(csv_dir(tmp_path / "raw", ratings=rows), tmp_path / "out2")
    rows[1900], rows[1950] = "7,1,4.0,1", "7,3,4.0,1"
    with pytest.raises(DataError, match=r"ratings.csv, line 1952: 1 interaction\(s\) reference item ids missing"):
        prepare(csv_dir(tmp_path / "raw", ratings=rows), tmp_path / "out2")


ERRORS = [
    # (make, rows, file, line, needle)
    (ml100k_dir, ["1\t1\t5\t1", "1\t2\t6\t1"], "u.data", 2, "rating 6 out of range: expected whole stars from 1 to 5"),
    (ml100k_dir, ["1\t1\t5\t1", "1\t2\t0\t1"], "u.data", 2, "rating 0 out of range"),
    (ml100k_dir, ["1\t1\t5\t1", "1\t1\t5\t-3"], "u.data", 2, "negative timestamp -3"),
    (ml100k_dir, ["1\t1\t5\t1", "x\t1\t5\t1"], "u.data", 2, "user_id is not an integer: 'x'"),
    (ml100k_dir, ["1\t1\t5\t1", "1\t1\tfive\t1"], "u.data", 2, "rating is not a number: 'five'"),
    (ml100k_dir, ["1\t1\t5\t1", "1\t1\t5\t1.5"], "u.data", 2, "timestamp is not an integer: '1.5'"),
    (ml100k_dir, ["1\t1\t5\t1", "1\t1\t5"], "u.data", 2, "expected 4 fields, found 3"),
    (
        ml100k_dir,
        ["1\t1\t5\t1", "1\t9\t5\t1", "1\t8\t5\t1"],
        "u.data",
        2,
        "2 interaction(s) reference item ids missing from u.item; the first is 9",
    ),
    (ml100k_dir, ["1\t1\t5\t1", "3\t1\t5\t1"], "u.data", 2, "reference user ids missing from u.user; the first is 3"),
    (ml1m_dir, ["1::1::5::1", "1::2::4.5::1"], "ratings.dat", 2, "rating 4.5 out of range: expected whole stars"),
    (csv_dir, ["7,1,4.0,1", "7,1,5.5,1"], "ratings.csv", 3, "rating 5.5 out of range: expected half stars"),
    (csv_dir, ["7,1,4.0,1", "7,1,0.0,1"], "ratings.csv", 3, "rating 0 out of range"),
    (csv_dir, ["7,1,4.0,1", "7,1,nan,1"], "ratings.csv", 3, "rating nan out of range"),
    (recbole_dir, ["1\t5\t4.2\t10", "1\t5\t5.1\t10"], "ml.inter", 3, "rating 5.1 out of range: expected any value"),
    (recbole_dir, ["1\t5\t4.2\t10", "1\t5\t4\t-10.5"], "ml.inter", 3, "negative timestamp -11"),
]


@pytest.mark.parametrize(("make", "rows", "name", "line", "needle"), ERRORS)
def test_interaction_errors(tmp_path: Path, make, rows: list[str], name: str, line: int, needle: str) -> None:
    with pytest.raises(DataError) as info:
        prepare(make(tmp_path / "raw", rows), tmp_path / "out")
    assert f"{name}, line {line}: " in str(info.value)
    assert needle in str(info.value)
    assert info.value.line == line and info.value.path.name == name


def test_empty_interactions(tmp_path: Path) -> None:
    raw = ml100k_dir(tmp_path / "raw")
    (raw / "u.data").write_bytes(b"")
    with pytest.raises(DataError, match=r"u.data: contains no interactions"):
        prepare(raw, tmp_path / "out")
    raw = csv_dir(tmp_path / "csv")
    write(raw, "ratings.csv", ["userId,movieId,rating,timestamp"])
    with pytest.raises(DataError, match=r"ratings.csv: contains no interactions"):
        prepare(raw, tmp_path / "out")
    (raw / "ratings.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"ratings.csv: contains no interactions"):
        prepare(raw, tmp_path / "out")


def test_missing_required_file(tmp_path: Path) -> None:
    raw = csv_dir(tmp_path / "raw")
    (raw / "movies.csv").unlink()
    with pytest.raises(DataError, match=r"movies.csv: required file movies.csv is missing"):
        prepare(raw, tmp_path / "out")


def test_duplicate_items_and_undecodable_text(tmp_path: Path) -> None:
    raw = csv_dir(tmp_path / "raw")
    write(raw, "movies.csv", ["movieId,title,genres", "1,A (1990),Drama", "2,B (1991),Drama", "1,C (1992),Drama"])
    with pytest.raises(DataError, match=r"movies.csv, line 4: duplicate item id 1 \(first on line 2\)"):
        prepare(raw, tmp_path / "out")
    (raw / "tags.csv").write_bytes(b"userId,movieId,tag,timestamp\n7,1,caf\xe9,1\n")
    with pytest.raises(DataError, match=r"tags.csv, line 2: cannot decode byte 0xe9: the file must be utf-8-encoded"):
        prepare(raw, tmp_path / "out")


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    raw = ml100k_dir(tmp_path / "raw", ["1\t1\t5\t1", "1\t1\t9\t1"])
    parent = tmp_path / "prepared"
    parent.mkdir()
    with pytest.raises(DataError):
        prepare(raw, parent / "ml-100k")
    assert list(parent.iterdir()) == []


def test_failure_keeps_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(ml100k_dir(tmp_path / "good"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DataError):
        prepare(ml100k_dir(tmp_path / "bad", ["1\t1\t5\t1", "1\t1\t9\t1"]), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out"]


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown format 'ml-5k'"):
        prepare(ml100k_dir(tmp_path / "raw"), tmp_path / "out", fmt="ml-5k")

"""Tests for the RecBole atomic-file reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.data.formats import recbole
from movierec.data.schema import INTERACTIONS_SCHEMA
from movierec.errors import DataError

INTER = [
    "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    "196\t242\t3\t881250949",
    "186\t302\t3.5\t891717742.0",
]
ITEM = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "242\tKolya\t1996\tComedy",
    "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller",
    "267\tunkonwn\tunkonwn\tunknown",
    "543\tMisérables, Les\t1995\tDrama Musical",
]
USER = [
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
    "196\t49\tM\twriter\t55105",
    "186\t39\tF\texecutive\t00000",
]


def write_atomic(root: Path, name: str = "ml-100k", inter=INTER, item=ITEM, user=USER) -> Path:
    """Write tiny UTF-8 atomic files ``<name>.inter/.item/.user``; ``None`` leaves one out."""
    root.mkdir(parents=True, exist_ok=True)
    for suffix, lines in ((".inter", inter), (".item", item), (".user", user)):
        if lines is not None:
            (root / f"{name}{suffix}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_read_interactions(tmp_path: Path) -> None:
    batches = list(recbole.read_interactions(write_atomic(tmp_path)))
    assert all(b.schema.equals(INTERACTIONS_SCHEMA) for b in batches)
    rows = [r for b in batches for r in b.to_pylist()]
    assert rows == [
        {"user_id": 196, "item_id": 242, "rating": 3.0, "timestamp": 881250949},
        {"user_id": 186, "item_id": 302, "rating": 3.5, "timestamp": 891717742},
    ]


def test_fields_mapped_by_name_in_any_order(tmp_path: Path) -> None:
    inter = ["timestamp:float\treview:token_seq\titem_id:token\tuser_id:token\trating:float", "5\tgreat film\t7\t9\t4"]
    item = ["genre:token_seq\ttitle:token\titem_id:token\tyear:token", "Drama War\tSome Film\t7\t2001"]
    root = write_atomic(tmp_path, name="custom", inter=inter, item=item, user=None)
    row = next(recbole.read_interactions(root)).to_pylist()[0]
    assert row == {"user_id": 9, "item_id": 7, "rating": 4.0, "timestamp": 5}
    assert recbole.read_items(root).to_pylist() == [
        {"item_id": 7, "title": "Some Film", "year": 2001, "genres": ["Drama", "War"]}
    ]
    assert recbole.read_users(root) is None and recbole.read_tags(root) is None


def test_read_items_and_users(tmp_path: Path) -> None:
    root = write_atomic(tmp_path)
    items = {r["item_id"]: r for r in recbole.read_items(root).to_pylist()}
    assert items[302]["genres"] == ["Crime", "Film-Noir", "Mystery", "Thriller"]
    assert items[267]["year"] is None and items[267]["genres"] == ["unknown"]
    assert items[543]["title"] == "Misérables, Les" and items[543]["year"] == 1995
    users = recbole.read_users(root).to_pylist()
    assert users[1] == {"user_id": 186, "age": 39, "gender": "F", "occupation": "executive", "zip_code": "00000"}


def test_header_lacking_a_field(tmp_path: Path) -> None:
    root = write_atomic(tmp_path, inter=["user_id:token\titem_id:token\trating:float", "1\t2\t3"])
    with pytest.raises(DataError, match=r"ml-100k.inter, line 1: header lacks the field\(s\) timestamp"):
        list(recbole.read_interactions(root))


def test_several_inter_files(tmp_path: Path) -> None:
    write_atomic(tmp_path)
    write_atomic(tmp_path, name="other")
    with pytest.raises(DataError, match="exactly one"):
        recbole.read_interactions(tmp_path)


@pytest.mark.parametrize(
    ("bad_row", "needle"),
    [("1\t2\t3", "expected 4 fields, found 3"), ("1\t2\tgood\t4", "rating:float is not a number: 'good'")],
)
def test_inter_errors_name_file_and_line(tmp_path: Path, bad_row: str, needle: str) -> None:
    root = write_atomic(tmp_path, inter=[*INTER, bad_row])
    with pytest.raises(DataError, match=needle) as info:
        list(recbole.read_interactions(root))
    assert "ml-100k.inter, line 4" in str(info.value)


def test_item_errors_name_file_and_line(tmp_path: Path) -> None:
    root = write_atomic(tmp_path, item=[*ITEM, "242\tAgain\t1996\tDrama"])
    with pytest.raises(DataError, match=r"ml-100k.item, line 6: duplicate item id 242"):
        recbole.read_items(root)
    write_atomic(tmp_path, item=[*ITEM, "1\tShort\t1996"])
    with pytest.raises(DataError, match=r"ml-100k.item, line 6: malformed row: expected 4 fields, found 3"):
        recbole.read_items(root)

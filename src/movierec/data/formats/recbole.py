"""RecBole atomic files: tab-separated ``<name>.inter``, ``<name>.item`` and ``<name>.user`` with typed headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from movierec.data.formats._common import (
    USERS_FULL_SCHEMA,
    InteractionsSource,
    build_table,
    decode_text,
    parse_int,
    require,
    text_lines,
    title_year,
)
from movierec.data.formats.streaming import stream_interactions
from movierec.data.schema import ITEMS_SCHEMA
from movierec.errors import DataError

ENCODING = "utf-8"
# Canonical column -> the RecBole field names (before the colon) that carry it.
INTER_FIELDS = {"user_id": ("user_id",), "item_id": ("item_id",), "rating": ("rating",), "timestamp": ("timestamp",)}
ITEM_FIELDS = {
    "item_id": ("item_id",),
    "title": ("movie_title", "title"),
    "year": ("release_year", "year"),
    "genres": ("class", "genre", "genres"),
}
USER_FIELDS = {name: (name,) for name in ("user_id", "age", "gender", "occupation", "zip_code")}
_READ_TYPES = {"user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float32(), "timestamp": pa.float64()}
_NUMBER = re.compile(r"\s*\d+\s*")


def inter_file(directory: Path) -> Path:
    """Find the atomic interactions file.

    Args:
        directory: the directory holding the atomic files.

    Returns:
        Its single ``*.inter`` file.

    Raises:
        DataError: there is no ``.inter`` file, or more than one.
    """
    found = sorted(Path(directory).glob("*.inter"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"expected exactly one *.inter file, found {names}", path=directory)
    return found[0]


def _header(path: Path, line: str, wanted: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> dict[str, int]:
    """Map canonical names to column positions from a ``name:type`` header line."""
    names = [field.split(":", 1)[0].strip() for field in line.split("\t")]
    positions: dict[str, int] = {}
    for canonical, aliases in wanted.items():
        for position, name in enumerate(names):
            if name in aliases and canonical not in positions:
                positions[canonical] = position
    missing = [name for name in required if name not in positions]
    if missing:
        raise DataError(f"header lacks the field(s) {', '.join(missing)}", path, 1)
    return positions


def _rows(path: Path, wanted: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Iterator[tuple]:
    """Yield ``(line, {canonical: value})`` for the rows of a small atomic file."""
    lines = text_lines(decode_text(path, ENCODING))
    first = next(lines, None)
    if first is None or first[0] != 1:
        raise DataError("missing the typed header line (e.g. item_id:token)", path, 1)
    positions = _header(path, first[1], wanted, required)
    width = len(first[1].split("\t"))
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != width:
            raise DataError(f"malformed row: expected {width} fields, found {len(fields)}", path, number)
        yield number, {name: fields[position] for name, position in positions.items()}


def interactions_source(directory: Path) -> InteractionsSource:
    """Describe the ``.inter`` file.

    Args:
        directory: the directory holding the atomic files.

    Returns:
        The file, its one header line and the 0..5 scale (any float).
    """
    path = inter_file(directory)
    return InteractionsSource(path, 1, 0.0, 5.0, None, path.stem + ".item", path.stem + ".user")


def read_interactions(directory: Path) -> Iterator[pa.RecordBatch]:
    """Stream ``<name>.inter`` (user_id, item_id, rating, timestamp; other fields ignored).

    Args:
        directory: the directory holding the atomic files.

    Returns:
        An iterator of INTERACTIONS_SCHEMA record batches.
    """
    path = inter_file(directory)
    if path.stat().st_size == 0:
        return iter(())
    with open(path, encoding=ENCODING, errors="replace") as handle:
        header = handle.readline().lstrip("\ufeff").rstrip("\r\n")
    if not header:
        raise DataError("missing the typed header line (e.g. user_id:token)", path, 1)
    positions = _header(path, header, INTER_FIELDS, tuple(INTER_FIELDS))
    names = header.split("\t")
    if len(set(names)) != len(names):
        raise DataError("the header repeats a field", path, 1)
    columns = {canonical: names[position] for canonical, position in positions.items()}
    types = {names[position]: _READ_TYPES[canonical] for canonical, position in positions.items()}
    return stream_interactions(path, names, columns, types, delimiter="\t", header_lines=1, quoted=False)


def _name(directory: Path, suffix: str) -> Path:
    """The atomic file with the same stem as the ``.inter`` file and the given suffix."""
    return inter_file(directory).with_suffix(suffix)


def read_items(directory: Path, tags: pa.Table | None = None) -> pa.Table:
    """Read ``<name>.item``; ``class`` holds space-separated genres, titles carry no year.

    Args:
        directory: the directory holding the atomic files.
        tags: ignored (the atomic files carry no tags); accepted for a uniform interface.

    Returns:
        The items table; ``year`` is null where ``release_year`` is not a number.
    """
    path = require(directory, _name(directory, ".item").name)
    rows = []
    for number, row in _rows(path, ITEM_FIELDS, ("item_id",)):
        title = row.get("title", "").strip()
        if "year" in row:
            year = int(row["year"]) if _NUMBER.fullmatch(row["year"]) else None
        else:
            year = title_year(title)
        genres = row.get("genres", "").split()
        rows.append((number, parse_int(row["item_id"], "item_id", path, number), title or None, year, genres))
    return build_table(rows, ITEMS_SCHEMA, path, unique="item")


def read_users(directory: Path) -> pa.Table | None:
    """Read ``<name>.user`` (user_id, age, gender, occupation, zip_code), or None when absent.

    Args:
        directory: the directory holding the atomic files.

    Returns:
        A users table; missing or non-numeric ages are null.
    """
    path = _name(directory, ".user")
    if not path.is_file():
        return None
    rows = []
    for number, row in _rows(path, USER_FIELDS, ("user_id",)):
        age = row.get("age", "")
        rows.append(
            (number, parse_int(row["user_id"], "user_id", path, number),
             int(age) if _NUMBER.fullmatch(age) else None,
             *(row.get(name, "").strip() or None for name in ("gender", "occupation", "zip_code")))
        )  # fmt: skip
    return build_table(rows, USERS_FULL_SCHEMA, path, unique="user")


def read_tags(directory: Path) -> pa.Table | None:
    """Read the tags, which the atomic files used here do not carry.

    Args:
        directory: the directory holding the atomic files.

    Returns:
        None.
    """
    return None

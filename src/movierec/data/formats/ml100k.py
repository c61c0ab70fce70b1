"""MovieLens 100K: tab-separated u.data, pipe-separated latin-1 u.item, u.user and u.genre."""

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
    split_fields,
    text_lines,
    title_year,
)
from movierec.data.formats.streaming import stream_interactions
from movierec.data.schema import ITEMS_SCHEMA
from movierec.errors import DataError

DATA, ITEM, USER, GENRE = "u.data", "u.item", "u.user", "u.genre"
ENCODING = "latin-1"
# The 19 genre flags of u.item, in the README's order.
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_ITEM_FIELDS = 5 + len(GENRES)
_RELEASE = re.compile(r"\d{1,2}-[A-Za-z]{3}-(\d{4})")
_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def interactions_source(directory: Path) -> InteractionsSource:
    """Describe ``u.data``.

    Args:
        directory: the unpacked ``ml-100k`` directory.

    Returns:
        The file, its lack of header and the whole-star 1..5 scale.
    """
    return InteractionsSource(require(directory, DATA), 0, 1.0, 5.0, 1.0, ITEM, USER)


def read_interactions(directory: Path) -> Iterator[pa.RecordBatch]:
    """Stream ``u.data`` (user, item, rating, timestamp; tab-separated) in batches.

    Args:
        directory: the unpacked ``ml-100k`` directory.

    Returns:
        An iterator of INTERACTIONS_SCHEMA record batches.
    """
    path = require(directory, DATA)
    types = dict(zip(_COLUMNS, (pa.int64(), pa.int64(), pa.float32(), pa.int64())))
    columns = {name: name for name in _COLUMNS}
    return stream_interactions(path, _COLUMNS, columns, types, delimiter="\t", header_lines=0, quoted=False)


def _genre_names(directory: Path) -> list[str]:
    """Genre names by flag position, from u.genre when present (``name|index`` lines)."""
    path = Path(directory) / GENRE
    if not path.is_file():
        return list(GENRES)
    names: dict[int, str] = {}
    for number, line in text_lines(decode_text(path, ENCODING)):
        name, index = split_fields(line, "|", 2, path, number)
        names[parse_int(index, "genre index", path, number)] = name
    if sorted(names) != list(range(len(GENRES))):
        raise DataError(f"expected genre indices 0..{len(GENRES) - 1}, found {sorted(names)}", path=path)
    return [names[i] for i in range(len(GENRES))]


def _release_year(date: str, title: str, path: Path, number: int) -> int | None:
    """Year of a ``dd-Mon-yyyy`` release date; from the title when the date is empty."""
    if not date.strip():
        return title_year(title)
    match = _RELEASE.fullmatch(date.strip())
    if match is None:
        raise DataError(f"malformed release date {date!r}: expected dd-Mon-yyyy", path, number)
    return int(match.group(1))


def read_items(directory: Path, tags: pa.Table | None = None) -> pa.Table:
    """Read ``u.item``: id, title, release date, video date, IMDb URL and 19 genre flags.

    Args:
        directory: the unpacked ``ml-100k`` directory.
        tags: ignored (ML-100K has no tags); accepted for a uniform interface.

    Returns:
        The items table (ITEMS_SCHEMA).
    """
    path = require(directory, ITEM)
    genre_names = _genre_names(directory)
    rows = []
    for number, line in text_lines(decode_text(path, ENCODING)):
        fields = split_fields(line, "|", _ITEM_FIELDS, path, number)
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataError(f"malformed row: genre flags must be 0 or 1, found {'|'.join(flags)}", path, number)
        title = fields[1].strip()
        genres = [name for name, flag in zip(genre_names, flags) if flag == "1"]
        year = _release_year(fields[2], title, path, number)
        rows.append((number, parse_int(fields[0], "movie id", path, number), title, year, genres))
    return build_table(rows, ITEMS_SCHEMA, path, unique="item")


def read_users(directory: Path) -> pa.Table | None:
    """Read ``u.user`` (id|age|gender|occupation|zip), or None when it is absent.

    Args:
        directory: the unpacked ``ml-100k`` directory.

    Returns:
        A users table with age, gender, occupation and zip_code columns.
    """
    path = Path(directory) / USER
    if not path.is_file():
        return None
    rows = []
    for number, line in text_lines(decode_text(path, ENCODING)):
        user_id, age, gender, occupation, zip_code = split_fields(line, "|", 5, path, number)
        rows.append(
            (number, parse_int(user_id, "user id", path, number), parse_int(age, "age", path, number),
             gender.strip(), occupation.strip(), zip_code.strip())
        )  # fmt: skip
    return build_table(rows, USERS_FULL_SCHEMA, path, unique="user")


def read_tags(directory: Path) -> pa.Table | None:
    """Read the tags, which ML-100K does not have.

    Args:
        directory: the unpacked ``ml-100k`` directory.

    Returns:
        None.
    """
    return None

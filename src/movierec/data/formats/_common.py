"""Delimited-text helpers the MovieLens format readers share: decoding, parsing and tables."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from movierec.data.schema import USER_OPTIONAL_FIELDS, USERS_SCHEMA
from movierec.errors import DataError

_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_INT = re.compile(r"\s*-?\d+\s*")


# The users table of the formats that publish demographics.
USERS_FULL_SCHEMA = pa.schema(
    [USERS_SCHEMA.field("user_id"), *(pa.field(name, kind) for name, kind in USER_OPTIONAL_FIELDS.items())]
)


@dataclass(frozen=True)
class InteractionsSource:
    """Where a format's interactions live, which ratings it allows and what they reference.

    ``header_lines`` counts the lines before the first row, so row ``i`` (0-based) of
    the stream is on line ``header_lines + i + 1``. ``rating_step`` is ``None`` when
    any value in ``[rating_min, rating_max]`` is allowed. ``items_file`` and
    ``users_file`` name the files the ids must exist in (for error messages).
    """

    path: Path
    header_lines: int
    rating_min: float
    rating_max: float
    rating_step: float | None
    items_file: str
    users_file: str


def require(directory: Path, name: str) -> Path:
    """Return the path of a file the format cannot do without.

    Args:
        directory: the dataset directory.
        name: the file's name.

    Returns:
        ``directory / name``.

    Raises:
        DataError: the file does not exist (the message names it).
    """
    path = Path(directory) / name
    if not path.is_file():
        raise DataError(f"required file {name} is missing", path=path)
    return path


def decode_text(path: Path, encoding: str) -> str:
    """Read a whole (small) file as text.

    Args:
        path: the file.
        encoding: its expected encoding (a UTF-8 byte-order mark is dropped).

    Returns:
        The decoded text.

    Raises:
        DataError: undecodable bytes; the message names the line and the encoding.
    """
    data = path.read_bytes()
    if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"cannot decode byte 0x{data[exc.start]:02x}: the file must be {encoding}-encoded",
            path=path,
            line=line,
        ) from None


def text_lines(text: str) -> Iterator[tuple[int, str]]:
    """Split text into numbered lines on ``\\n`` only (latin-1 ``\\x85`` is not a break).

    Args:
        text: the decoded file.

    Yields:
        ``(line_number, line)`` for each non-blank line, without its line ending.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def split_fields(line: str, sep: str, count: int, path: Path, number: int) -> list[str]:
    """Split a line into exactly ``count`` fields.

    Args:
        line: the line.
        sep: the field separator.
        count: the expected number of fields.
        path: the file, for error messages.
        number: the line number, for error messages.

    Returns:
        The fields.

    Raises:
        DataError: the line has another number of fields.
    """
    fields = line.split(sep)
    if len(fields) != count:
        raise DataError(f"malformed row: expected {count} fields, found {len(fields)}", path, number)
    return fields


def parse_int(value: str, what: str, path: Path, number: int) -> int:
    """Parse an integer field.

    Args:
        value: the field's text.
        what: the field's name, for error messages.
        path: the file, for error messages.
        number: the line number, for error messages.

    Returns:
        The integer.

    Raises:
        DataError: the text is not an integer.
    """
    if not _INT.fullmatch(value):
        raise DataError(f"malformed row: {what} is not an integer: {value!r}", path, number)
    return int(value)


def title_year(title: str) -> int | None:
    """Extract the release year that ends a MovieLens title.

    Args:
        title: e.g. ``"Toy Story (1995)"`` or ``"Fawlty Towers (1975–1979)"``.

    Returns:
        The (first) year in the trailing parentheses, or None when there is none.
    """
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def check_header(path: Path, found: Sequence[str], expected: Sequence[str]) -> None:
    """Check a CSV header.

    Args:
        path: the file, for error messages.
        found: the header's fields.
        expected: the fields the format defines.

    Raises:
        DataError: the header differs (line 1).
    """
    if [f.strip() for f in found] != list(expected):
        raise DataError(f"unexpected header {','.join(found)!r}: expected {','.join(expected)!r}", path, 1)


def build_table(rows: Iterable[Sequence], schema: pa.Schema, path: Path, unique: str | None = None) -> pa.Table:
    """Build a table from ``(line, *values)`` rows, values in ``schema`` order.

    Args:
        rows: the parsed rows, each led by its line number.
        schema: the table's schema.
        path: the source file, for error messages.
        unique: when given (e.g. ``"item"``), the first value is an id that must be unique.

    Returns:
        The table.

    Raises:
        DataError: a duplicate id (the line of the second occurrence).
    """
    seen: dict[int, int] = {}
    columns: list[list] = [[] for _ in schema]
    for number, *values in rows:
        if unique is not None:
            if values[0] in seen:
                raise DataError(f"duplicate {unique} id {values[0]} (first on line {seen[values[0]]})", path, number)
            seen[values[0]] = number
        for column, value in zip(columns, values):
            column.append(value)
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema)


def with_item_tags(items: pa.Table, tags: pa.Table) -> pa.Table:
    """Add the items' ``tags`` column.

    Args:
        items: an items table.
        tags: a TAGS_SCHEMA table.

    Returns:
        ``items`` with a ``tags`` column: each item's distinct tags, lower-cased,
        stripped and sorted (an empty list for untagged items).
    """
    cleaned = pc.utf8_lower(pc.utf8_trim_whitespace(tags.column("tag")))
    grouped = (
        pa.table({"item_id": tags.column("item_id"), "tag": cleaned})
        .filter(pc.not_equal(cleaned, ""))
        .group_by("item_id")
        .aggregate([("tag", "distinct")])
    )
    by_item = dict(zip(grouped.column("item_id").to_pylist(), grouped.column("tag_distinct").to_pylist()))
    values = [sorted(by_item.get(i, [])) for i in items.column("item_id").to_pylist()]
    return items.append_column(pa.field("tags", pa.list_(pa.string())), pa.array(values, pa.list_(pa.string())))

"""Delimited-text helpers the MovieLens format readers share: decoding, parsing, tables, streaming."""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data.schema import INTERACTIONS_SCHEMA, USER_OPTIONAL_FIELDS, USERS_SCHEMA
from movierec.errors import DataError

# Bytes pyarrow reads per interactions batch; tests shrink it to force many batches.
BLOCK_SIZE = 16 << 20
# Encoding used to re-read an interactions file when locating a row pyarrow rejected.
_LOCATE_ENCODING = "utf-8"
_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_INT = re.compile(r"\s*-?\d+\s*")
_FLOAT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|\s*[-+]?(inf|nan)\s*", re.I)


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


def arrow_options(
    names: Sequence[str], types: dict[str, pa.DataType], delimiter: str, quoted: bool, skip_rows: int, block_size: int
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions, list]:
    """Build pyarrow CSV options that keep exactly one row per line.

    Args:
        names: every column of the file, in order.
        types: the type of each column to read (the others are skipped).
        delimiter: the field separator.
        quoted: whether fields may be double-quoted.
        skip_rows: header lines to skip.
        block_size: bytes per parsed block.

    Returns:
        Read, parse and convert options, and the list the invalid-row handler fills.
    """
    invalid: list = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    read = pacsv.ReadOptions(column_names=list(names), skip_rows=skip_rows, block_size=block_size, use_threads=False)
    parse = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"' if quoted else False,
        ignore_empty_lines=False,
        newlines_in_values=False,
        invalid_row_handler=on_invalid,
    )
    convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types), null_values=[""])
    return read, parse, convert, invalid


def to_interactions(
    batch: pa.RecordBatch | pa.Table, columns: dict[str, str], path: Path, first_line: int
) -> pa.RecordBatch:
    """Rename the source columns to the canonical ones and cast to INTERACTIONS_SCHEMA.

    Args:
        batch: parsed rows, the first of which is on line ``first_line``.
        columns: canonical name -> source column name.
        path: the file, for error messages.
        first_line: line number of the first row.

    Returns:
        A record batch with exactly INTERACTIONS_SCHEMA.
    """
    arrays = []
    for field in INTERACTIONS_SCHEMA:
        array = batch.column(columns[field.name])
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if array.null_count:
            row = pc.index(pc.is_null(array), True).as_py()
            message = f"malformed row: {field.name} is missing (blank line or empty field)"
            raise DataError(message, path, first_line + row)
        if pa.types.is_floating(array.type) and pa.types.is_integer(field.type):
            finite = pc.is_finite(array)
            if not pc.all(finite).as_py():
                row = pc.index(finite, False).as_py()
                raise DataError(f"malformed row: {field.name} is not a finite number", path, first_line + row)
            array = pc.floor(array)
        arrays.append(array.cast(field.type, safe=False))
    return pa.RecordBatch.from_arrays(arrays, schema=INTERACTIONS_SCHEMA)


def locate_bad_row(
    lines: Iterable[str],
    first_line: int,
    names: Sequence[str],
    types: dict[str, pa.DataType],
    delimiter: str,
    quoted: bool,
) -> tuple[int, str] | None:
    """Find the first line pyarrow would reject, after a parse failure.

    Args:
        lines: the lines, starting with line ``first_line``.
        first_line: the number of the first line.
        names: every column of the file, in order.
        types: the type of each column that is read.
        delimiter: the field separator.
        quoted: whether fields may be double-quoted.

    Returns:
        ``(line, reason)`` for the first bad line, or None.
    """
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    for number, line in enumerate(lines, start=first_line):
        fields = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter, quoting=quoting), [])
        if len(fields) != len(names):
            return number, f"malformed row: expected {len(names)} fields, found {len(fields)}"
        for name, value in zip(names, fields):
            kind = types.get(name)
            pattern = _INT if kind is not None and pa.types.is_integer(kind) else _FLOAT
            if kind is not None and value != "" and not pattern.fullmatch(value):
                noun = "an integer" if pattern is _INT else "a number"
                return number, f"malformed row: {name} is not {noun}: {value!r}"
    return None


def stream_interactions(
    path: Path,
    names: Sequence[str],
    columns: dict[str, str],
    types: dict[str, pa.DataType],
    *,
    delimiter: str,
    header_lines: int,
    quoted: bool,
) -> Iterator[pa.RecordBatch]:
    """Stream a delimited interactions file with ``pyarrow.csv.open_csv``.

    Args:
        path: the file.
        names: every column of the file, in order.
        columns: canonical name -> source column name.
        types: pyarrow type of each source column to read.
        delimiter: field separator.
        header_lines: lines to skip before the first row.
        quoted: whether fields may be double-quoted.

    Yields:
        INTERACTIONS_SCHEMA record batches of about ``BLOCK_SIZE`` bytes each.
    """
    if path.stat().st_size == 0:
        return
    read, parse, convert, invalid = arrow_options(names, types, delimiter, quoted, header_lines, BLOCK_SIZE)
    first_line = header_lines + 1
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield to_interactions(batch, columns, path, first_line)
            first_line += batch.num_rows
    except pa.ArrowInvalid as exc:
        with open(path, encoding=_LOCATE_ENCODING, errors="replace", newline="") as handle:
            rest = itertools.islice(handle, first_line - 1, None)
            found = locate_bad_row(rest, first_line, names, types, delimiter, quoted)
        raise parse_error(path, found, invalid, 0, exc, first_line) from None


def parse_error(
    path: Path, found: tuple[int, str] | None, invalid: list, offset: int, exc: Exception, first_line: int
) -> DataError:
    """The DataError for a pyarrow parse failure: the earliest bad line known.

    Args:
        path: the file.
        found: ``(line, reason)`` from :func:`locate_bad_row`, or None.
        invalid: the rows pyarrow's invalid-row handler saw.
        offset: added to pyarrow's row numbers to make them file line numbers.
        exc: pyarrow's exception, reported when nothing better is known.
        first_line: the line of the failing batch's first row.

    Returns:
        The error to raise.
    """
    candidates = [found] if found else []
    for row in invalid[:1]:
        if row.number is not None:
            message = f"malformed row: expected {row.expected_columns} fields, found {row.actual_columns}"
            candidates.append((row.number + offset, message))
    if not candidates:
        return DataError(f"cannot parse: {exc}", path, first_line)
    line, message = min(candidates)
    return DataError(message, path, line)

"""Streaming MovieLens interactions through pyarrow's CSV reader, and locating the rows it rejects."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.data.formats._common import _INT
from movierec.data.schema import INTERACTIONS_SCHEMA
from movierec.errors import DataError

# Bytes pyarrow reads per interactions batch; tests shrink it to force many batches.
BLOCK_SIZE = 16 << 20
# Encoding used to re-read an interactions file when locating a row pyarrow rejected.
_LOCATE_ENCODING = "utf-8"
_FLOAT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|\s*[-+]?(inf|nan)\s*", re.I)


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
    reader = None
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
    finally:
        # stop the reader's read-ahead before the caller moves on (or the process exits)
        if reader is not None:
            reader.close()


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

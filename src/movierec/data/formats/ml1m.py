"""MovieLens 1M and 10M: "::"-separated ratings.dat, movies.dat, users.dat (1M) and tags.dat (10M)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

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
    with_item_tags,
)
from movierec.data.formats.streaming import arrow_options, locate_bad_row, parse_error, to_interactions
from movierec.data.schema import ITEMS_SCHEMA, TAGS_SCHEMA
from movierec.errors import DataError

# Lines parsed per interactions batch; tests shrink it to force many batches.
CHUNK_LINES = 1_000_000

RATINGS, MOVIES, USERS, TAGS = "ratings.dat", "movies.dat", "users.dat", "tags.dat"
ENCODING = "latin-1"
SEP = "::"
# users.dat occupation codes, from the ML-1M README.
OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip
_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
_TYPES = dict(zip(_COLUMNS, (pa.int64(), pa.int64(), pa.float32(), pa.int64())))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a .dat file: UTF-8 when it decodes as such (ML-10M), else latin-1."""
    try:
        text = decode_text(path, "utf-8")
    except DataError:
        text = decode_text(path, ENCODING)
    return text_lines(text)


def interactions_source(directory: Path) -> InteractionsSource:
    """Describe ``ratings.dat``.

    Args:
        directory: the unpacked ``ml-1m`` or ``ml-10m`` directory.

    Returns:
        The file (no header) and its scale: whole stars 1..5 for ML-1M (recognised
        by its ``users.dat``), else ML-10M's half stars 0.5..5.
    """
    path = require(directory, RATINGS)
    if (Path(directory) / USERS).is_file():
        return InteractionsSource(path, 0, 1.0, 5.0, 1.0, MOVIES, USERS)
    return InteractionsSource(path, 0, 0.5, 5.0, 0.5, MOVIES, USERS)


def read_interactions(directory: Path) -> Iterator[pa.RecordBatch]:
    """Stream ``ratings.dat`` (UserID::MovieID::Rating::Timestamp) in chunks of lines.

    Each chunk of ``CHUNK_LINES`` lines has "::" replaced by a tab and is parsed with
    pyarrow; line numbers in errors count from the start of the file.

    Args:
        directory: the unpacked ``ml-1m`` or ``ml-10m`` directory.

    Returns:
        An iterator of INTERACTIONS_SCHEMA record batches.
    """
    return _stream(require(directory, RATINGS))


def _stream(path: Path) -> Iterator[pa.RecordBatch]:
    """Parse ``path`` chunk by chunk, tracking the line number of each chunk's first row."""
    columns = {name: name for name in _COLUMNS}
    first_line = 1
    with open(path, "rb") as handle:
        while lines := list(itertools.islice(handle, CHUNK_LINES)):
            data = b"".join(lines).replace(SEP.encode(), b"\t")
            read, parse, convert, invalid = arrow_options(_COLUMNS, _TYPES, "\t", False, 0, max(len(data), 1 << 20))
            try:
                table = pacsv.read_csv(
                    io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert
                )
            except pa.ArrowInvalid as exc:
                raise _chunk_error(path, lines, first_line, invalid, exc) from None
            yield to_interactions(table, columns, path, first_line)
            first_line += len(lines)


def _chunk_error(path: Path, lines: list[bytes], first_line: int, invalid: list, exc: Exception) -> DataError:
    """Turn a pyarrow failure on a chunk into a DataError with the file's line number."""
    text = (line.decode(ENCODING).replace(SEP, "\t") for line in lines)
    found = locate_bad_row(text, first_line, _COLUMNS, _TYPES, "\t", quoted=False)
    return parse_error(path, found, invalid, first_line - 1, exc, first_line)


def read_items(directory: Path, tags: pa.Table | None = None) -> pa.Table:
    """Read ``movies.dat`` (MovieID::Title::Genres, genres pipe-separated).

    Args:
        directory: the unpacked ``ml-1m`` or ``ml-10m`` directory.
        tags: the already-read tags table, to avoid reading ``tags.dat`` twice.

    Returns:
        The items table, with a ``tags`` column when ``tags.dat`` exists (ML-10M).
    """
    path = require(directory, MOVIES)
    rows = []
    for number, line in _lines(path):
        movie_id, title, genres = split_fields(line, SEP, 3, path, number)
        title = title.strip()
        genre_list = [] if genres.strip() in ("", "(no genres listed)") else genres.strip().split("|")
        rows.append((number, parse_int(movie_id, "MovieID", path, number), title, title_year(title), genre_list))
    items = build_table(rows, ITEMS_SCHEMA, path, unique="item")
    tags = read_tags(directory) if tags is None else tags
    return items if tags is None else with_item_tags(items, tags)


def read_users(directory: Path) -> pa.Table | None:
    """Read ``users.dat`` (UserID::Gender::Age::Occupation::Zip-code), or None (ML-10M).

    ``age`` is the README's age-group code (1, 18, 25, 35, 45, 50, 56) and
    ``occupation`` the README's name for the occupation code.

    Args:
        directory: the unpacked ``ml-1m`` directory.

    Returns:
        A users table, or None when ``users.dat`` is absent.
    """
    path = Path(directory) / USERS
    if not path.is_file():
        return None
    rows = []
    for number, line in _lines(path):
        user_id, gender, age, occupation, zip_code = split_fields(line, SEP, 5, path, number)
        code = parse_int(occupation, "Occupation", path, number)
        if not 0 <= code < len(OCCUPATIONS):
            raise DataError(f"unknown occupation code {code}: expected 0..{len(OCCUPATIONS) - 1}", path, number)
        user = parse_int(user_id, "UserID", path, number)
        rows.append((number, user, parse_int(age, "Age", path, number), gender.strip(), OCCUPATIONS[code], zip_code))
    return build_table(rows, USERS_FULL_SCHEMA, path, unique="user")


def read_tags(directory: Path) -> pa.Table | None:
    """Read ``tags.dat`` (UserID::MovieID::Tag::Timestamp, ML-10M), or None when absent.

    Args:
        directory: the unpacked ``ml-10m`` directory.

    Returns:
        A TAGS_SCHEMA table, or None.
    """
    path = Path(directory) / TAGS
    if not path.is_file():
        return None
    rows = []
    for number, line in _lines(path):
        fields = line.split(SEP)
        if len(fields) < 4:
            raise DataError(f"malformed row: expected 4 fields, found {len(fields)}", path, number)
        user, movie, stamp = fields[0], fields[1], fields[-1]
        rows.append(
            (number, parse_int(user, "UserID", path, number), parse_int(movie, "MovieID", path, number),
             SEP.join(fields[2:-1]), parse_int(stamp, "Timestamp", path, number))
        )  # fmt: skip
    return build_table(rows, TAGS_SCHEMA, path)

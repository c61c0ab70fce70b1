"""The ml-latest CSV family readers: ratings.csv, movies.csv, tags.csv and links.csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from movierec.data.formats._common import (
    InteractionsSource,
    build_table,
    check_header,
    decode_text,
    parse_int,
    require,
    title_year,
    with_item_tags,
)
from movierec.data.formats.streaming import stream_interactions
from movierec.data.schema import ITEMS_SCHEMA, TAGS_SCHEMA
from movierec.errors import DataError

RATINGS, MOVIES, TAGS, LINKS = "ratings.csv", "movies.csv", "tags.csv", "links.csv"
ENCODING = "utf-8"
NO_GENRES = "(no genres listed)"
_HEADERS = {
    RATINGS: ["userId", "movieId", "rating", "timestamp"],
    MOVIES: ["movieId", "title", "genres"],
    TAGS: ["userId", "movieId", "tag", "timestamp"],
    LINKS: ["movieId", "imdbId", "tmdbId"],
}


def _csv_rows(path: Path, name: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for a UTF-8 CSV file after checking its header."""
    reader = csv.reader(io.StringIO(decode_text(path, ENCODING), newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError("file is empty: expected a header line", path, 1)
    check_header(path, header, _HEADERS[name])
    start = reader.line_num + 1
    try:
        for fields in reader:
            if fields:
                if len(fields) != len(header):
                    raise DataError(f"malformed row: expected {len(header)} fields, found {len(fields)}", path, start)
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed row: {exc}", path, start) from None


# ---------------------------------------------------------------- CSV family readers
def interactions_source(directory: Path) -> InteractionsSource:
    """Describe ``ratings.csv``.

    Args:
        directory: the unpacked dataset directory.

    Returns:
        The file, its one header line and the half-star 0.5..5 scale.
    """
    return InteractionsSource(require(directory, RATINGS), 1, 0.5, 5.0, 0.5, MOVIES, "")


def read_interactions(directory: Path) -> Iterator[pa.RecordBatch]:
    """Stream ``ratings.csv`` as INTERACTIONS_SCHEMA batches.

    Args:
        directory: the unpacked dataset directory.

    Returns:
        An iterator of record batches; the file is never held in memory whole.
    """
    path = require(directory, RATINGS)
    if path.stat().st_size == 0:
        return iter(())
    with open(path, encoding=ENCODING, errors="replace") as handle:
        check_header(path, handle.readline().lstrip("\ufeff").rstrip("\r\n").split(","), _HEADERS[RATINGS])
    names = _HEADERS[RATINGS]
    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    columns = dict(zip(("user_id", "item_id", "rating", "timestamp"), names))
    return stream_interactions(path, names, columns, types, delimiter=",", header_lines=1, quoted=True)


def read_items(directory: Path, tags: pa.Table | None = None) -> pa.Table:
    """Read ``movies.csv`` (plus ``links.csv`` and the tags, when present).

    Args:
        directory: the unpacked dataset directory.
        tags: the already-read tags table, to avoid reading ``tags.csv`` twice.

    Returns:
        The items table; ``tags``, ``imdb_id`` and ``tmdb_id`` columns when the
        source has tags and links.
    """
    path = require(directory, MOVIES)
    rows = []
    for number, (movie_id, title, genres) in _csv_rows(path, MOVIES):
        title = title.strip()
        genre_list = [] if genres.strip() in ("", NO_GENRES) else genres.strip().split("|")
        rows.append((number, parse_int(movie_id, "movieId", path, number), title, title_year(title), genre_list))
    items = build_table(rows, ITEMS_SCHEMA, path, unique="item")
    tags = read_tags(directory) if tags is None else tags
    if tags is not None:
        items = with_item_tags(items, tags)
    links = Path(directory) / LINKS
    if links.is_file():
        items = _with_links(items, links)
    return items


def _with_links(items: pa.Table, path: Path) -> pa.Table:
    """Add ``imdb_id`` and ``tmdb_id`` from ``links.csv`` (null where unknown)."""
    found: dict[int, tuple[int | None, int | None]] = {}
    for number, (movie_id, imdb, tmdb) in _csv_rows(path, LINKS):
        ids = [parse_int(v, n, path, number) if v.strip() else None for v, n in ((imdb, "imdbId"), (tmdb, "tmdbId"))]
        found[parse_int(movie_id, "movieId", path, number)] = (ids[0], ids[1])
    pairs = [found.get(i, (None, None)) for i in items.column("item_id").to_pylist()]
    for position, name in enumerate(("imdb_id", "tmdb_id")):
        items = items.append_column(pa.field(name, pa.int64()), pa.array([p[position] for p in pairs], pa.int64()))
    return items


def read_users(directory: Path) -> pa.Table | None:
    """Read the users' demographics, which the CSV family does not publish.

    Args:
        directory: the unpacked dataset directory.

    Returns:
        None.
    """
    return None


def read_tags(directory: Path) -> pa.Table | None:
    """Read ``tags.csv`` (userId,movieId,tag,timestamp; tags may be quoted).

    Args:
        directory: the unpacked dataset directory.

    Returns:
        A TAGS_SCHEMA table with the tags as published, or None when absent.
    """
    path = Path(directory) / TAGS
    if not path.is_file():
        return None
    rows = [
        (n, parse_int(u, "userId", path, n), parse_int(m, "movieId", path, n), tag, parse_int(t, "timestamp", path, n))
        for n, (u, m, tag, t) in _csv_rows(path, TAGS)
    ]
    return build_table(rows, TAGS_SCHEMA, path)

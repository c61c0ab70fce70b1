"""The canonical schema every source format is normalised into.

``interactions``: one row per (user, item, rating, time) event.
``items``: one row per item, with title, release year, genres and (when the source
has them) tags and external ids.
``users``: one row per user, with whatever features the source has (none for the
ml-latest CSV family, which publishes no demographics).
``tags``: one row per tag application, kept with its timestamp so that later steps
can use only the tags applied before a split time.
"""

from __future__ import annotations

import pyarrow as pa

INTERACTIONS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
    ]
)

# Required item columns; ``tags`` (list<string>), ``imdb_id`` and ``tmdb_id`` (int64)
# are added when the source has them.
ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("genres", pa.list_(pa.string())),
    ]
)
ITEM_OPTIONAL_FIELDS = {
    "tags": pa.list_(pa.string()),
    "imdb_id": pa.int64(),
    "tmdb_id": pa.int64(),
}

# Required user column; the demographic columns are present when the source has them.
USERS_SCHEMA = pa.schema([pa.field("user_id", pa.int64(), nullable=False)])
USER_OPTIONAL_FIELDS = {
    "age": pa.int32(),
    "gender": pa.string(),
    "occupation": pa.string(),
    "zip_code": pa.string(),
}

TAGS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
    ]
)

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
TAGS_FILE = "tags.parquet"

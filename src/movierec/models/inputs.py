"""NumPy inputs for the TensorFlow towers: padded item metadata, user features and histories.

Every tensor the towers take is dense and fixed-width, so that the exported
SavedModels have simple, named signatures: ids are int64, lists are padded (``-1`` for
ids, ``""`` for strings), demographics are scalars.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

ID_PAD = -1
STR_PAD = ""


def pad_strings(lists: list[list[str] | None], width: int) -> np.ndarray:
    """Pad (or cut) lists of strings into an ``(n, width)`` object array of ``""``."""
    out = np.full((len(lists), width), STR_PAD, dtype=object)
    for row, values in enumerate(lists):
        if values:
            values = list(values)[:width]
            out[row, : len(values)] = values
    return out


def pad_ids(lists: list[np.ndarray], width: int) -> np.ndarray:
    """Keep the last ``width`` ids of each list, left-aligned, padded with ``-1``."""
    out = np.full((len(lists), width), ID_PAD, dtype=np.int64)
    for row, values in enumerate(lists):
        tail = np.asarray(values, dtype=np.int64)[-width:] if width else np.array([], np.int64)
        out[row, : tail.size] = tail
    return out


@dataclass
class Catalogue:
    """Candidate-tower inputs for every recommendable item, row ``i`` for ``item_id[i]``."""

    item_id: np.ndarray
    genres: np.ndarray
    title_tokens: np.ndarray
    year: np.ndarray
    tags: np.ndarray | None
    n_interactions: np.ndarray
    n_recent: np.ndarray
    mean_rating: np.ndarray
    first_ts: np.ndarray
    titles: list[str] = field(default_factory=list)

    @classmethod
    def from_table(cls, items: pa.Table, widths: dict[str, int]) -> Catalogue:
        """Build from the features step's ``items.parquet`` (sorted by item id)."""
        items = items.sort_by("item_id")
        years = items.column("year").to_numpy(zero_copy_only=False).astype(np.float64)
        fill = np.nanmedian(years) if np.isfinite(years).any() else 0.0
        years = np.where(np.isfinite(years), years, fill).astype(np.float32)
        tags = None
        if "tags" in items.column_names:
            tags = pad_strings(items.column("tags").to_pylist(), widths["tags"])
        return cls(
            item_id=items.column("item_id").to_numpy().astype(np.int64),
            genres=pad_strings(items.column("genres").to_pylist(), widths["genres"]),
            title_tokens=pad_strings(items.column("title_tokens").to_pylist(), widths["title"]),
            year=years,
            tags=tags,
            n_interactions=items.column("n_interactions").to_numpy().astype(np.float32),
            n_recent=items.column("n_recent").to_numpy().astype(np.float32),
            mean_rating=items.column("mean_rating").to_numpy(zero_copy_only=False).astype(np.float32),
            first_ts=items.column("first_ts").to_numpy().astype(np.int64),
            titles=[t or "" for t in items.column("title").to_pylist()],
        )

    def __len__(self) -> int:
        return int(self.item_id.size)

    def to_table(self) -> pa.Table:
        """The catalogue as a table that :meth:`from_table` reads back identically."""

        def unpad(matrix: np.ndarray) -> list[list[str]]:
            return [[t for t in row if t] for row in matrix.tolist()]

        columns = {
            "item_id": pa.array(self.item_id, pa.int64()),
            "title": pa.array(self.titles or [""] * len(self), pa.string()),
            "year": pa.array(self.year, pa.float32()),
            "genres": pa.array(unpad(self.genres), pa.list_(pa.string())),
            "title_tokens": pa.array(unpad(self.title_tokens), pa.list_(pa.string())),
            "n_interactions": pa.array(self.n_interactions, pa.float32()),
            "n_recent": pa.array(self.n_recent, pa.float32()),
            "mean_rating": pa.array(self.mean_rating, pa.float32()),
            "first_ts": pa.array(self.first_ts, pa.int64()),
        }
        if self.tags is not None:
            columns["tags"] = pa.array(unpad(self.tags), pa.list_(pa.string()))
        return pa.table(columns)

    def features(self, rows: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Candidate-tower input dict for the given rows."""
        out = {
            "item_id": self.item_id[rows],
            "genres": self.genres[rows],
            "title_tokens": self.title_tokens[rows],
            "year": self.year[rows],
        }
        if self.tags is not None:
            out["tags"] = self.tags[rows]
        return out

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        """Row of each item id; ``-1`` when the catalogue lacks it."""
        pos = np.searchsorted(self.item_id, item_ids)
        pos = np.minimum(pos, len(self) - 1)
        return np.where(self.item_id[pos] == item_ids, pos, -1)


@dataclass
class UserDirectory:
    """Demographics by user id (age, gender, occupation), for the features a source has."""

    user_id: np.ndarray
    columns: dict[str, np.ndarray]

    @classmethod
    def from_table(cls, users: pa.Table) -> UserDirectory:
        """Build from the prepared ``users.parquet``."""
        users = users.sort_by("user_id")
        columns: dict[str, np.ndarray] = {}
        if "age" in users.column_names:
            columns["age"] = users.column("age").to_numpy(zero_copy_only=False).astype(np.float32)
        for name in ("gender", "occupation"):
            if name in users.column_names:
                columns[name] = np.array([v or "" for v in users.column(name).to_pylist()], dtype=object)
        return cls(users.column("user_id").to_numpy().astype(np.int64), columns)

    def to_table(self) -> pa.Table:
        """The directory as a table :meth:`from_table` reads back unchanged."""
        columns: dict[str, pa.Array] = {"user_id": pa.array(self.user_id, pa.int64())}
        for name, values in self.columns.items():
            columns[name] = pa.array(values, pa.float32()) if name == "age" else pa.array(values.tolist(), pa.string())
        return pa.table(columns)

    def lookup(self, user_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Demographic inputs for ``user_ids``; unknown users get ``nan`` age and ``""``."""
        user_ids = np.asarray(user_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.user_id, user_ids), max(self.user_id.size - 1, 0))
        found = (
            (self.user_id.size > 0) & (self.user_id[pos] == user_ids)
            if self.user_id.size
            else np.zeros(user_ids.shape, bool)
        )
        out: dict[str, np.ndarray] = {}
        for name, values in self.columns.items():
            if name == "age":
                out[name] = np.where(found, values[pos], np.nan).astype(np.float32)
            else:
                out[name] = np.where(found, values[pos], STR_PAD).astype(object)
        return out


def user_histories(events: pa.Table) -> dict[int, np.ndarray]:
    """Each user's item ids in time order (ties broken by item id)."""
    ordered = events.sort_by([("user_id", "ascending"), ("timestamp", "ascending"), ("item_id", "ascending")])
    users = ordered.column("user_id").to_numpy()
    items = ordered.column("item_id").to_numpy()
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, users.size]
    return {int(users[s]): items[s:e] for s, e in zip(bounds[:-1], bounds[1:]) if e > s}


def query_features(
    user_ids: np.ndarray, histories: list[np.ndarray], users: UserDirectory | None, history_len: int
) -> dict[str, np.ndarray]:
    """Query-tower input dict: ids, padded histories, and demographics when known."""
    out = {"user_id": np.asarray(user_ids, dtype=np.int64), "history": pad_ids(histories, history_len)}
    if users is not None:
        out.update(users.lookup(out["user_id"]))
    return out


def training_examples(events: pa.Table, history_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One example per event: the user, the items they touched before it, the item, the time.

    Returns:
        ``(user_ids, histories (n, history_len) padded with -1, item_ids, timestamps)``.
    """
    ordered = events.sort_by([("user_id", "ascending"), ("timestamp", "ascending"), ("item_id", "ascending")])
    users = ordered.column("user_id").to_numpy().astype(np.int64)
    items = ordered.column("item_id").to_numpy().astype(np.int64)
    stamps = ordered.column("timestamp").to_numpy().astype(np.int64)
    n = users.size
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    position = np.arange(n) - first  # how many earlier events the user has
    hist = np.full((n, history_len), ID_PAD, dtype=np.int64)
    for offset in range(1, history_len + 1):
        # slot (history_len - offset) of the right-aligned window holds the event `offset` steps back
        ok = position >= offset
        hist[ok, history_len - offset] = items[np.flatnonzero(ok) - offset]
    # left-align (most recent last) so that the layout matches pad_ids
    lengths = np.minimum(position, history_len)
    shift = history_len - lengths
    idx = (np.arange(history_len)[None, :] + shift[:, None]) % history_len
    hist = np.take_along_axis(hist, idx, axis=1)
    hist[np.arange(history_len)[None, :] >= lengths[:, None]] = ID_PAD
    return users, hist, items, stamps

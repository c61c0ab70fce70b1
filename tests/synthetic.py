"""Synthetic MovieLens-shaped data with learnable structure, for tests of every layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller"]
DAY = 86_400
T0 = 1_500_000_000


def synthetic_events(n_users: int = 60, n_items: int = 40, seed: int = 0) -> pa.Table:
    """Events with structure a recommender can learn: users prefer one genre block of items.

    Users join at staggered times over 100 days, so a temporal split has warm and cold
    users in both held-out parts; popular items are drawn more often.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        start = T0 + int(rng.integers(0, 80)) * DAY
        taste = user % 4
        n = int(rng.integers(8, 20))
        block = [i for i in range(1, n_items + 1) if i % 4 == taste]
        others = [i for i in range(1, n_items + 1) if i % 4 != taste]
        picks = list(rng.choice(block, size=min(len(block), n - 3), replace=False))
        picks += list(rng.choice(others, size=3, replace=False))
        for j, item in enumerate(picks):
            rows.append((user, int(item), float(rng.integers(1, 6)), start + j * DAY // 2 + int(rng.integers(0, 3600))))
    users, items, ratings, ts = zip(*rows)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "rating": pa.array(ratings, pa.float32()),
            "timestamp": pa.array(ts, pa.int64()),
        }
    )


def synthetic_items(n_items: int = 40) -> pa.Table:
    """Catalogue rows matching :func:`synthetic_events`."""
    return pa.table(
        {
            "item_id": pa.array(range(1, n_items + 1), pa.int64()),
            "title": [f"Movie {i}, The ({1980 + i})" for i in range(1, n_items + 1)],
            "year": pa.array([1980 + i for i in range(1, n_items + 1)], pa.int32()),
            "genres": [[GENRES[i % len(GENRES)], GENRES[(i // 4) % len(GENRES)]] for i in range(1, n_items + 1)],
        }
    )


def write_csv_dataset(directory: Path, n_users: int = 60, n_items: int = 40) -> Path:
    """Write the synthetic data in the ml-latest CSV layout (ratings, movies, tags, links)."""
    directory.mkdir(parents=True, exist_ok=True)
    events = synthetic_events(n_users, n_items).to_pylist()
    with open(directory / "ratings.csv", "w", encoding="utf-8") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for e in sorted(events, key=lambda e: (e["user_id"], e["item_id"])):
            f.write(f"{e['user_id']},{e['item_id']},{e['rating']:.1f},{e['timestamp']}\n")
    items = synthetic_items(n_items).to_pylist()
    with open(directory / "movies.csv", "w", encoding="utf-8") as f:
        f.write("movieId,title,genres\n")
        for it in items:
            genres = "|".join(dict.fromkeys(it["genres"])) if it["item_id"] != 7 else "(no genres listed)"
            f.write(f'{it["item_id"]},"{it["title"]}",{genres}\n')
    with open(directory / "tags.csv", "w", encoding="utf-8") as f:
        f.write('userId,movieId,tag,timestamp\n1,1,funny,1500000000\n2,1,"dark, bleak",1500000100\n')
    with open(directory / "links.csv", "w", encoding="utf-8") as f:
        f.write("movieId,imdbId,tmdbId\n")
        for it in items:
            f.write(f"{it['item_id']},{100000 + it['item_id']},{'' if it['item_id'] == 3 else 500 + it['item_id']}\n")
    return directory

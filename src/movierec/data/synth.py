"""``movierec data synth``: a synthetic MovieLens-shaped dataset with structure to learn.

The data are **synthetic**: no real person or film is behind them. They are written in
the ml-latest CSV layout (``ratings.csv``, ``movies.csv``, ``tags.csv``, ``links.csv``)
so that every step of the pipeline reads them like a GroupLens download, with no
demographics. The generative story:

* **Items** belong to one of ``n_clusters`` taste clusters; each cluster has one to three
  of the 18 MovieLens genres and its own tag words. An item's appeal inside its cluster
  is log-normal, so popularity is long-tailed. Part of the catalogue exists before the
  data begin; the rest is released over the time line (a release year follows).
* **Users** have a long-tailed activity (log-normal event counts, at least
  ``min_events``), join at random times, and have affinities over a dozen clusters
  (drawn by cluster size) that drift by a random walk as they consume: tastes change
  over time. A few events explore a cluster outside them.
* **Each event** is either *fresh* or *follows* one of the user's last few events
  (short-term interest: the recent past predicts the next item). A fresh event draws a
  cluster from the current affinities, then an item of that cluster already released, by
  appeal, with a boost for recent releases. A following event stays in the cluster of the
  event it follows and takes an item near that one in the cluster's release order (a
  sequel, a film of the same season). A user never consumes the same item twice.
* **Ratings** (half stars) grow with the user's affinity for the cluster, the item's
  quality and a user bias; some events also leave a tag drawn from the cluster's words.

Everything is drawn from one seeded generator, so a seed gives the same files. Users are
drawn a chunk at a time with vectorised NumPy (:mod:`movierec.data.synth_events`) and each
chunk is appended to the CSV files as it is done, so memory stays flat at any size: ML-25M's
shape (25M ratings, 160K users, 60K items) or a catalogue of a million items.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from movierec.data.synth_events import CHUNK_DRAWS, DAY, END, SPAN_DAYS, START, Catalogue, Shape, user_events
from movierec.errors import ParamsError
from movierec.io import atomic_dir, write_json

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
WORDS = [
    "slow",
    "dark",
    "witty",
    "epic",
    "quiet",
    "gritty",
    "lush",
    "tense",
    "warm",
    "odd",
    "bold",
    "sad",
    "clever",
    "loud",
    "gentle",
    "wild",
    "cold",
    "bright",
    "strange",
    "tender",
]
HEADERS = {
    "ratings.csv": "userId,movieId,rating,timestamp",
    "movies.csv": "movieId,title,genres",
    "links.csv": "movieId,imdbId,tmdbId",
    "tags.csv": "userId,movieId,tag,timestamp",
}


@dataclass(frozen=True)
class SynthConfig:
    """Size and shape of a synthetic dataset.

    Attributes:
        users: number of users.
        items: number of items in the catalogue.
        events: target number of ratings (the result is within a few percent).
        seed: seed of every random draw.
        n_clusters: taste clusters (default: about one per 150 items, 8 to 400).
        min_events: fewest events per user.
        stickiness: chance that an event stays in a recent event's cluster.
        drift: standard deviation of the per-event random walk of a user's affinities.
        tag_rate: share of events that also leave a tag.
        all_items: list every catalogue item in ``movies.csv`` and ``links.csv``, rated or
            not (as ml-latest lists unrated films); otherwise only the rated ones.
    """

    users: int
    items: int
    events: int
    seed: int = 0
    n_clusters: int | None = None
    min_events: int = 5
    stickiness: float = 0.45
    drift: float = 0.08
    tag_rate: float = 0.03
    all_items: bool = False

    def check(self) -> None:
        """Raise :class:`ParamsError` naming the first bad setting."""
        for name in ("users", "items", "events"):
            if getattr(self, name) < 1:
                raise ParamsError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.items < 20:
            raise ParamsError(f"--items must be at least 20, got {self.items}")
        if self.events < self.users * self.min_events:
            raise ParamsError(
                f"--events must be at least users x {self.min_events} = {self.users * self.min_events} "
                f"(every user has at least {self.min_events} events), got {self.events}"
            )
        if self.events > self.users * self.items // 2:
            raise ParamsError(
                f"--events {self.events} is more than half of users x items; "
                "raise --items or --users, or lower --events"
            )
        for name in ("stickiness", "tag_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ParamsError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def parse_count(text: str | int) -> int:
    """A count as people write it: ``25000000``, ``25M``, ``1.5M`` or ``50K``.

    Raises:
        ParamsError: the text is not such a count.
    """
    if isinstance(text, int):
        return text
    value = str(text).strip().replace("_", "").replace(",", "")
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(value[-1:].upper(), 1)
    number = value[:-1] if scale > 1 else value
    try:
        count = float(number) * scale
    except ValueError:
        raise ParamsError(f"{text!r} is not a count (write e.g. 25000000, 25M or 50K)") from None
    if count != int(count) or count < 1:
        raise ParamsError(f"{text!r} is not a positive whole count")
    return int(count)


def write_synthetic(out_dir: Path, config: SynthConfig, progress: bool = True) -> dict[str, Any]:
    """Generate a dataset and write it to ``out_dir`` (atomically) in the ml-latest layout.

    Args:
        out_dir: the folder to create (replaced whole if it exists).
        config: sizes, seed and shape.
        progress: show a progress bar of the events written (on stderr).

    Returns:
        A summary: counts of users, items, ratings and tags, and the settings.
    """
    config.check()
    rng = np.random.default_rng(config.seed)
    items = _items(config, rng)
    catalogue = Catalogue(items)
    shape = Shape(config.min_events, config.stickiness, config.drift)
    counts = _event_counts(config, rng)
    words = pa.array([w for cluster_words in items["words"] for w in cluster_words])
    rated = np.zeros(config.items, bool)
    users_seen = ratings = tags = 0
    bar = tqdm(
        total=int(counts.sum()),
        desc="synth events",
        unit="event",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        mininterval=1.0,
    )
    with atomic_dir(out_dir) as tmp, _Csv(tmp / "ratings.csv") as ratings_out, _Csv(tmp / "tags.csv") as tags_out:
        for first, stop in _chunks(counts):
            chunk = user_events(counts[first:stop], catalogue, shape, rng, first)
            rated[chunk.item] = True
            users_seen += int(np.unique(chunk.user).size)
            ratings += int(chunk.item.size)
            ratings_out.write(
                {
                    "userId": chunk.user + 1,
                    "movieId": chunk.item + 1,
                    "rating": pa.array(chunk.rating).cast(pa.decimal128(2, 1)),
                    "timestamp": chunk.time,
                }
            )
            tagged = np.flatnonzero(rng.random(chunk.item.size) < config.tag_rate)
            word = items["cluster"][chunk.item[tagged]] * 3 + rng.integers(0, 3, tagged.size)
            tags_out.write(
                {
                    "userId": chunk.user[tagged] + 1,
                    "movieId": chunk.item[tagged] + 1,
                    "tag": words.take(pa.array(word)),
                    "timestamp": chunk.time[tagged] + 60,
                }
            )
            tags += int(tagged.size)
            bar.update(int(counts[first:stop].sum()))
        bar.close()
        listed = np.arange(config.items) if config.all_items else np.flatnonzero(rated)
        with _Csv(tmp / "movies.csv") as movies_out:
            movies_out.write(
                {
                    "movieId": listed + 1,
                    "title": [
                        f"Synthetic Film {i + 1} ({y})" for i, y in zip(listed.tolist(), items["year"][listed].tolist())
                    ],
                    "genres": items["genres"].take(pa.array(listed)),
                }
            )
        with _Csv(tmp / "links.csv") as links_out:
            links_out.write(
                {
                    "movieId": listed + 1,
                    "imdbId": [f"{9_000_000 + i:07d}" for i in listed.tolist()],
                    "tmdbId": listed + 900_000,
                }
            )
        summary = {
            "synthetic": True,
            "users": users_seen,
            "items": int(rated.sum()),
            "catalogue": int(listed.size),
            "ratings": ratings,
            "tags": tags,
            "settings": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "clusters": int(items["n_clusters"]),
        }
        (tmp / "README.txt").write_text(
            "SYNTHETIC DATA generated by `movierec data synth`; no real users or films.\n"
            f"Settings: {summary['settings']}\nLayout: the ml-latest CSV files (ratings, movies, tags, links).\n",
            encoding="utf-8",
        )
        write_json(tmp / "synth.json", summary)
    return summary


def _event_counts(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Events per user: ``min_events`` each, the rest shared by a log-normal activity; a user
    holds at most half the catalogue, and what the cap cuts goes to the other users."""
    activity = rng.lognormal(0.0, 1.1, config.users)
    cap = config.items // 2
    counts = np.full(config.users, config.min_events, np.int64)
    left = config.events - counts.sum()
    for _ in range(8):
        room = counts < cap
        if left <= 0 or not room.any():
            break
        share = np.where(room, activity, 0.0)
        counts = np.minimum(counts + rng.multinomial(left, share / share.sum()), cap)
        left = config.events - counts.sum()
    return counts


def _chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive user ranges of about :data:`CHUNK_DRAWS` draws each (fixed by the counts,
    so by the seed, not by the machine)."""
    cum = np.cumsum(counts * 1.8 + 10)
    cuts = np.searchsorted(cum, np.arange(CHUNK_DRAWS, cum[-1], CHUNK_DRAWS))
    bounds = np.unique(np.r_[0, cuts, counts.size])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


class _Csv:
    """A CSV file written a table at a time, with ml-latest's header line (no quoting: no
    value the generator writes holds a comma or a quote)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: BinaryIO | None = None
        self.options = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def __enter__(self) -> _Csv:
        self.handle = self.path.open("wb")
        self.handle.write((HEADERS[self.path.name] + "\n").encode("utf-8"))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        self.handle.close()

    def write(self, columns: dict[str, Any]) -> None:
        """Append the rows of ``columns`` (arrays of equal length, in header order)."""
        assert self.handle is not None
        pacsv.write_csv(pa.table(columns), self.handle, write_options=self.options)


def _items(config: SynthConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Clusters, genres, appeal, quality and release times of the catalogue."""
    n_clusters = config.n_clusters or int(np.clip(config.items // 150, 8, 400))
    shares = np.array([8, 5, 2, 2, 10, 5, 1, 14, 3, 1, 3, 1, 3, 6, 4, 7, 2, 1], dtype=np.float64)
    cluster_genres = [
        sorted(rng.choice(len(GENRES), size=int(k), replace=False, p=shares / shares.sum()).tolist())
        for k in rng.choice([1, 2, 3], size=n_clusters, p=[0.35, 0.45, 0.2])
    ]
    cluster = rng.choice(n_clusters, size=config.items, p=rng.dirichlet(np.full(n_clusters, 2.0)))
    # an item sometimes lacks its cluster's last genre, or carries one more
    sizes = np.array([len(g) for g in cluster_genres])
    drop = (sizes[cluster] > 1) & (rng.random(config.items) < 0.2)
    extra = np.where(rng.random(config.items) < 0.1, rng.integers(0, len(GENRES), config.items), -1)
    variants, variant = np.unique(np.stack([cluster, drop, extra], axis=1), axis=0, return_inverse=True)
    names = []
    for c, dropped, added in variants.tolist():
        chosen = [GENRES[g] for g in cluster_genres[c]][: -1 if dropped else None]
        names.append("|".join(sorted(set(chosen) | {GENRES[added]}) if added >= 0 else chosen))
    appeal = rng.lognormal(0.0, 1.7, config.items)
    quality = rng.normal(0.0, 0.45, config.items)
    existing = rng.random(config.items) < 0.6
    release = np.where(
        existing,
        START - rng.integers(1, 40 * 365, config.items) * DAY,
        START + rng.integers(0, SPAN_DAYS - 30, config.items) * DAY,
    )
    release_year = 1970 + (release / (365.2425 * DAY))
    year = np.where(existing, np.minimum(release_year, 2014), release_year).astype(np.int64)
    words = [
        [f"{WORDS[(3 * c + j) % len(WORDS)]}-{GENRES[cluster_genres[c][0]].lower()}" for j in range(3)]
        for c in range(n_clusters)
    ]
    return {
        "n_clusters": n_clusters,
        "cluster": cluster,
        "genres": pa.array(names).take(pa.array(variant.ravel())),
        "appeal": appeal,
        "quality": quality,
        "release": np.minimum(release, END - DAY),
        "year": year,
        "words": words,
    }

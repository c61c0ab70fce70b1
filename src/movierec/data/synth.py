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
  ``min_events``), join at random times, and have affinities over the clusters that
  drift by a random walk as they consume: tastes change over time.
* **Each event** is either *fresh* or *follows* one of the user's last few events
  (short-term interest: the recent past predicts the next item). A fresh event draws a
  cluster from the current affinities, then an item of that cluster already released, by
  appeal, with a boost for recent releases. A following event stays in the cluster of the
  event it follows and takes an item near that one in the cluster's release order (a
  sequel, a film of the same season). A user never consumes the same item twice.
* **Ratings** (half stars) grow with the user's affinity for the cluster, the item's
  quality and a user bias; some events also leave a tag drawn from the cluster's words.

Everything is drawn from one seeded generator, so a seed gives the same files.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

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
DAY = 86_400
START = 1_420_070_400  # 2015-01-01 UTC
SPAN_DAYS = 4 * 365
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


@dataclass(frozen=True)
class SynthConfig:
    """Size and shape of a synthetic dataset.

    Attributes:
        users: number of users.
        items: number of items in the catalogue (items nobody rated are left out, as in
            ml-latest).
        events: target number of ratings (the result is within a few percent).
        seed: seed of every random draw.
        n_clusters: taste clusters (default: about one per 150 items, 8 to 400).
        min_events: fewest events per user.
        stickiness: chance that an event stays in a recent event's cluster.
        drift: standard deviation of the per-event random walk of a user's affinities.
        tag_rate: share of events that also leave a tag.
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


def write_synthetic(out_dir: Path, config: SynthConfig) -> dict[str, Any]:
    """Generate a dataset and write it to ``out_dir`` (atomically) in the ml-latest layout.

    Args:
        out_dir: the folder to create (replaced whole if it exists).
        config: sizes, seed and shape.

    Returns:
        A summary: counts of users, items, ratings and tags, and the settings.
    """
    config.check()
    rng = np.random.default_rng(config.seed)
    items = _items(config, rng)
    _users, events_item, events_time, events_user, ratings = _events(config, items, rng)
    used = np.unique(events_item)
    with atomic_dir(out_dir) as tmp:
        _write_csv(
            tmp / "ratings.csv",
            ["userId", "movieId", "rating", "timestamp"],
            zip(
                (events_user + 1).tolist(),
                (events_item + 1).tolist(),
                [f"{r:.1f}" for r in ratings.tolist()],
                events_time.tolist(),
            ),
        )
        _write_csv(
            tmp / "movies.csv",
            ["movieId", "title", "genres"],
            ((int(i) + 1, f"Synthetic Film {int(i) + 1} ({int(items['year'][i])})", items["genres"][i]) for i in used),
        )
        _write_csv(
            tmp / "links.csv",
            ["movieId", "imdbId", "tmdbId"],
            ((int(i) + 1, f"{9_000_000 + int(i):07d}", 900_000 + int(i)) for i in used),
        )
        tagged = rng.random(events_item.size) < config.tag_rate
        words = items["words"]
        tag_rows = [
            (int(u) + 1, int(i) + 1, words[int(items["cluster"][i])][int(k)], int(t) + 60)
            for u, i, t, k in zip(
                events_user[tagged], events_item[tagged], events_time[tagged], rng.integers(0, 3, int(tagged.sum()))
            )
        ]
        _write_csv(tmp / "tags.csv", ["userId", "movieId", "tag", "timestamp"], tag_rows)
        summary = {
            "synthetic": True,
            "users": int(np.unique(events_user).size),
            "items": int(used.size),
            "ratings": int(events_item.size),
            "tags": len(tag_rows),
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


def _items(config: SynthConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Clusters, genres, appeal, quality and release times of the catalogue."""
    n_clusters = config.n_clusters or int(np.clip(config.items // 150, 8, 400))
    cluster_genres = []
    for _ in range(n_clusters):
        k = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        cluster_genres.append(sorted(rng.choice(len(GENRES), size=k, replace=False, p=_genre_shares()).tolist()))
    cluster_size = rng.dirichlet(np.full(n_clusters, 2.0))
    cluster = rng.choice(n_clusters, size=config.items, p=cluster_size)
    genres = []
    for c in cluster:
        names = [GENRES[g] for g in cluster_genres[c]]
        # an item sometimes lacks one of its cluster's genres, or carries one more
        if len(names) > 1 and rng.random() < 0.2:
            names = names[:-1]
        if rng.random() < 0.1:
            names = sorted(set(names) | {GENRES[int(rng.integers(0, len(GENRES)))]})
        genres.append("|".join(names))
    appeal = rng.lognormal(0.0, 1.3, config.items)
    quality = rng.normal(0.0, 0.45, config.items)
    end = START + SPAN_DAYS * DAY
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
        "genres": genres,
        "appeal": appeal,
        "quality": quality,
        "release": np.minimum(release, end - DAY),
        "year": year,
        "words": words,
    }


def _genre_shares() -> np.ndarray:
    weights = np.array([8, 5, 2, 2, 10, 5, 1, 14, 3, 1, 3, 1, 3, 6, 4, 7, 2, 1], dtype=np.float64)
    return weights / weights.sum()


def _events(
    config: SynthConfig, items: dict[str, Any], rng: np.random.Generator
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every user's time-ordered events: items, times and ratings."""
    n_clusters = items["n_clusters"]
    activity = rng.lognormal(0.0, 1.1, config.users)
    extra = config.events - config.users * config.min_events
    counts = config.min_events + rng.multinomial(extra, activity / activity.sum())
    counts = np.minimum(counts, config.items // 2)
    # per cluster: items ordered by release time, with cumulative appeal for prefix sampling
    by_cluster = []
    for c in range(n_clusters):
        members = np.flatnonzero(items["cluster"] == c)
        members = members[np.argsort(items["release"][members], kind="stable")]
        by_cluster.append((members, items["release"][members], np.cumsum(items["appeal"][members])))
    all_order = np.argsort(items["release"], kind="stable")
    all_release, all_cum = items["release"][all_order], np.cumsum(items["appeal"][all_order])
    user_bias = rng.normal(0.0, 0.4, config.users)
    end = START + SPAN_DAYS * DAY
    out_items, out_times, out_users, out_ratings = [], [], [], []
    for user in tqdm(
        range(config.users), desc="synth users", unit="user", file=sys.stderr, leave=False, mininterval=1.0
    ):
        n = int(counts[user])
        draws = int(n * 1.8) + 10  # over-draw: repeats of an item are dropped below
        for _attempt in range(4):  # heavy users of small catalogues repeat a lot: draw more
            logits, _clusters, times, picked = _draw_user(
                config, items, by_cluster, all_order, all_release, all_cum, draws, end, rng
            )
            _, first = np.unique(picked, return_index=True)
            if first.size >= n:
                break
            draws *= 2
        keep = np.sort(first)[:n]
        chosen, when = picked[keep], times[keep]
        affinity = logits[keep, items["cluster"][chosen]] - logits[keep].mean(axis=1)
        raw = 3.4 + user_bias[user] + items["quality"][chosen] + 0.25 * affinity + rng.normal(0, 0.7, keep.size)
        out_items.append(chosen)
        out_times.append(when)
        out_users.append(np.full(keep.size, user, np.int64))
        out_ratings.append(np.clip(np.round(raw * 2) / 2, 0.5, 5.0))
    return (
        config.users,
        np.concatenate(out_items),
        np.concatenate(out_times),
        np.concatenate(out_users),
        np.concatenate(out_ratings),
    )


def _draw_user(
    config: SynthConfig,
    items: dict[str, Any],
    by_cluster: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    all_order: np.ndarray,
    all_release: np.ndarray,
    all_cum: np.ndarray,
    draws: int,
    end: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One user's ``draws`` candidate events (repeats included): affinity logits, clusters,
    times and items."""
    n_clusters = items["n_clusters"]
    taste0 = rng.normal(0.0, 1.6, n_clusters)
    walk = np.cumsum(rng.normal(0.0, config.drift, (draws, n_clusters)), axis=0)
    logits = taste0[None, :] + walk
    fresh = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    root = _sticky(rng.random(draws) < config.stickiness, rng.integers(1, 4, draws))
    clusters = fresh[root]
    follows = root != np.arange(draws)
    times = _times(draws, rng, end)
    picked = np.empty(draws, np.int64)
    u = rng.random(draws)
    recent_boost = rng.random(draws) < 0.15
    offset = np.rint(rng.normal(0.0, 3.0, draws)).astype(np.int64)
    offset[offset == 0] = 1
    for c in np.unique(clusters):
        at = np.flatnonzero(clusters == c)
        members, release, cum = by_cluster[c]
        stop = np.searchsorted(release, times[at], side="right")
        start = np.where(recent_boost[at], np.searchsorted(release, times[at] - 90 * DAY), 0)
        start = np.where(start < stop, start, 0)
        ok = stop > 0
        base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
        top = cum[np.maximum(stop - 1, 0)]
        pos = np.searchsorted(cum, base + u[at] * (top - base), side="right")
        pos = np.minimum(np.maximum(pos, start), np.maximum(stop - 1, 0))
        # a following event: near its root event's item in the cluster's release order
        near = follows[at]
        if near.any():
            root_pos = np.zeros(draws, np.int64)
            root_pos[at[~near]] = pos[~near]
            pos[near] = np.clip(root_pos[root[at[near]]] + offset[at[near]], 0, np.maximum(stop[near] - 1, 0))
        picked[at] = np.where(ok, members[pos] if members.size else -1, -1)
    missing = picked < 0  # the cluster had nothing released yet: any released item
    if missing.any():
        stop = np.maximum(np.searchsorted(all_release, times[missing], side="right"), 1)
        pos = np.searchsorted(all_cum, u[missing] * all_cum[stop - 1], side="right")
        picked[missing] = all_order[np.minimum(pos, stop - 1)]
    return logits, clusters, times, picked


def _sticky(sticky: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Short-term interest: a sticky event follows the event ``back`` steps earlier, which may
    follow another; returns each event's root (the fresh event it descends from, itself
    for a fresh event), resolved by pointer jumping."""
    n = sticky.size
    idx = np.arange(n)
    parent = np.where(sticky & (idx - back >= 0), idx - back, idx)
    for _ in range(int(np.ceil(np.log2(max(n, 2)))) + 1):
        parent = parent[parent]
    return parent


def _times(n: int, rng: np.random.Generator, end: int) -> np.ndarray:
    """Non-decreasing event times: sessions of a few events minutes apart, days between sessions."""
    join = START + int(rng.integers(0, SPAN_DAYS - 60)) * DAY
    in_session = rng.random(n) < 0.7
    gaps = np.where(in_session, rng.exponential(600.0, n), rng.exponential(rng.lognormal(1.5, 1.0) * DAY, n))
    times = join + np.cumsum(np.maximum(gaps, 1.0))
    if times[-1] >= end:  # squeeze into the time line, keeping the order
        times = join + (times - join) * ((end - 1 - join) / (times[-1] - join + 1))
    return times.astype(np.int64)


def _write_csv(path: Path, header: list[str], rows: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

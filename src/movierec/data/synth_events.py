"""The synthetic generator's events, drawn for many users at once (see :mod:`movierec.data.synth`).

Users are drawn in chunks of about :data:`CHUNK_DRAWS` candidate events; within a chunk
every step is one NumPy operation over all of its users' draws, with each user's draws a
contiguous segment (``seg`` gives a draw's user, ``pos`` its place in the user's own
sequence). Only the item choice loops, over the taste clusters present in the chunk.
A chunk's draws come from the one seeded generator in a fixed order, so a seed gives
the same events whatever the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DAY = 86_400
START = 1_420_070_400  # 2015-01-01 UTC
SPAN_DAYS = 4 * 365
END = START + SPAN_DAYS * DAY
CHUNK_DRAWS = 1 << 20  # candidate events drawn at once (bounds a chunk's memory to a few hundred MB)
LIKED = 12  # clusters a user's taste ranges over (drawn by cluster size, without replacement)
EXPLORE = 0.03  # share of fresh events from any cluster, by size, outside the user's taste
ATTEMPTS = 4  # users left short of distinct items are drawn again with twice the draws


@dataclass(frozen=True)
class Shape:
    """How events are drawn (the :class:`~movierec.data.synth.SynthConfig` knobs they use)."""

    min_events: int
    stickiness: float
    drift: float


@dataclass(frozen=True)
class ChunkEvents:
    """One chunk's kept events, grouped by user and time-ordered within a user."""

    user: np.ndarray
    item: np.ndarray
    time: np.ndarray
    rating: np.ndarray


class Catalogue:
    """The items as the event draws see them: per cluster, members by release time with
    cumulative appeal (for drawing by appeal among the released), and the same over all items."""

    def __init__(self, items: dict[str, Any]):
        self.n_clusters = int(items["n_clusters"])
        self.cluster = items["cluster"]
        self.quality = items["quality"]
        self.cluster_share = np.bincount(self.cluster, minlength=self.n_clusters) / self.cluster.size
        order = np.lexsort((items["release"], self.cluster))
        bounds = np.searchsorted(self.cluster[order], np.arange(self.n_clusters + 1))
        self.members = [order[bounds[c] : bounds[c + 1]] for c in range(self.n_clusters)]
        self.release = [items["release"][m] for m in self.members]
        self.cum = [np.cumsum(items["appeal"][m]) for m in self.members]
        self.all_order = np.argsort(items["release"], kind="stable")
        self.all_release = items["release"][self.all_order]
        self.all_cum = np.cumsum(items["appeal"][self.all_order])


def user_events(
    counts: np.ndarray, catalogue: Catalogue, shape: Shape, rng: np.random.Generator, first_user: int
) -> ChunkEvents:
    """Events of users ``first_user, first_user + 1, ...`` with ``counts`` events each (fewer
    when a user's draws still repeat items after :data:`ATTEMPTS` tries)."""
    n_users = counts.size
    draws = (counts * 1.8).astype(np.int64) + 10  # over-draw: repeats of an item are dropped
    bias = rng.normal(0.0, 0.4, n_users)
    parts: list[tuple[np.ndarray, ...]] = []
    pending = np.arange(n_users)
    for attempt in range(ATTEMPTS):
        item, time, affinity, seg = _draw(draws[pending], catalogue, shape, rng)
        keep, got = _first_distinct(seg, item, counts[pending], catalogue.cluster.size)
        short = (got < counts[pending]) & (attempt < ATTEMPTS - 1)
        keep &= ~short[seg]
        raw = 3.4 + bias[pending][seg] + catalogue.quality[item] + 0.25 * affinity + rng.normal(0, 0.7, seg.size)
        rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
        parts.append((first_user + pending[seg[keep]], item[keep], time[keep], rating[keep]))
        draws[pending[short]] *= 2
        pending = pending[short]
        if pending.size == 0:
            break
    user, item, time, rating = (np.concatenate(column) for column in zip(*parts))
    order = np.argsort(user, kind="stable")  # a user's events come from one attempt, in time order
    return ChunkEvents(user[order], item[order], time[order], rating[order])


def _first_distinct(
    seg: np.ndarray, item: np.ndarray, wanted: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's first ``wanted`` distinct items in draw order: the kept draws' mask and
    how many distinct items each user drew."""
    _, first = np.unique(seg * np.int64(n_items) + item, return_index=True)
    distinct = np.zeros(seg.size, bool)
    distinct[first] = True
    got = np.bincount(seg[distinct], minlength=wanted.size)
    rank = np.cumsum(distinct) - 1
    start = np.searchsorted(seg, np.arange(wanted.size))
    before = np.where(start > 0, rank[np.maximum(start - 1, 0)] + 1, 0)
    rank_in_user = rank - before[seg]
    return distinct & (rank_in_user < wanted[seg]), got


def _draw(
    draws: np.ndarray, catalogue: Catalogue, shape: Shape, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``draws[u]`` candidate events of each user (repeats included): items, times, the user's
    affinity for the item's cluster at that moment, and each draw's user (``seg``)."""
    n_users, total = draws.size, int(draws.sum())
    seg = np.repeat(np.arange(n_users), draws)
    start = np.r_[0, np.cumsum(draws)[:-1]]
    pos = np.arange(total) - start[seg]
    # tastes: LIKED clusters per user, drawn by size; affinities drift by a random walk
    k = min(LIKED, catalogue.n_clusters)
    keys = np.log(catalogue.cluster_share + 1e-12)[None, :] + rng.gumbel(size=(n_users, catalogue.n_clusters))
    liked = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    steps = rng.standard_normal((total, k), dtype=np.float32) * np.float32(shape.drift)
    logits = _segment_cumsum(steps, seg, start)
    logits += rng.normal(0.0, 1.6, (n_users, k)).astype(np.float32)[seg]
    noise = rng.random((total, k), dtype=np.float32)
    fresh_k = np.argmax(logits - np.log(-np.log(np.maximum(noise, np.float32(1e-12)))), axis=1)  # Gumbel-max
    explore = rng.random(total) < EXPLORE
    fresh = np.where(
        explore,
        rng.choice(catalogue.n_clusters, size=total, p=catalogue.cluster_share),
        liked[seg, fresh_k],
    )
    # short-term interest: a sticky draw follows one a few steps back, in its cluster
    back = rng.integers(1, 4, total)
    sticky = (rng.random(total) < shape.stickiness) & (pos >= back)
    root = _roots(np.where(sticky, np.arange(total) - back, np.arange(total)))
    clusters = fresh[root]
    affinity = np.where(explore[root], -1.0, logits[np.arange(total), fresh_k[root]] - logits.mean(axis=1))
    times = _times(seg, start, draws, rng)
    return _pick(clusters, root, times, catalogue, rng), times, affinity, seg


def _segment_cumsum(values: np.ndarray, seg: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 0 that restart at each segment's first row."""
    out = np.cumsum(values, axis=0)
    base = np.concatenate([np.zeros((1,) + values.shape[1:], values.dtype), out[start[1:] - 1]])
    out -= base[seg]
    return out


def _roots(parent: np.ndarray) -> np.ndarray:
    """The root of every draw (the fresh draw it descends from), by pointer jumping."""
    for _ in range(int(np.ceil(np.log2(max(parent.size, 2)))) + 1):
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    return parent


def _times(seg: np.ndarray, start: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-decreasing times per user: sessions of events minutes apart, days between sessions,
    from a random join date; squeezed into the time line when they run past its end."""
    n_users, total = draws.size, seg.size
    join = START + rng.integers(0, SPAN_DAYS - 60, n_users) * DAY
    pause = rng.lognormal(1.5, 1.0, n_users) * DAY
    in_session = rng.random(total) < 0.7
    gaps = np.where(in_session, rng.exponential(600.0, total), rng.exponential(1.0, total) * pause[seg])
    offset = _segment_cumsum(np.maximum(gaps, 1.0), seg, start)
    last = offset[start + draws - 1]
    room = (END - 1 - join).astype(np.float64)
    squeeze = np.where(join + last >= END, room / (last + 1.0), 1.0)
    return (join[seg] + offset * squeeze[seg]).astype(np.int64)


def _pick(
    clusters: np.ndarray, root: np.ndarray, times: np.ndarray, catalogue: Catalogue, rng: np.random.Generator
) -> np.ndarray:
    """An item for every draw. A fresh draw takes an item of its cluster already released,
    by appeal (15% of draws only among the last 90 days' releases); a following draw takes
    an item near its root's in the cluster's release order."""
    total = clusters.size
    u = rng.random(total)
    recent = rng.random(total) < 0.15
    offset = np.rint(rng.normal(0.0, 3.0, total)).astype(np.int64)
    offset[offset == 0] = 1
    follows = root != np.arange(total)
    picked = np.full(total, -1, np.int64)
    root_pos = np.zeros(total, np.int64)
    order = np.argsort(clusters, kind="stable")
    bounds = np.searchsorted(clusters[order], np.arange(catalogue.n_clusters + 1))
    for c in np.flatnonzero(np.diff(bounds)):
        at = order[bounds[c] : bounds[c + 1]]
        members, release, cum = catalogue.members[c], catalogue.release[c], catalogue.cum[c]
        if members.size == 0:
            continue
        stop = np.searchsorted(release, times[at], side="right")
        first = np.where(recent[at], np.searchsorted(release, times[at] - 90 * DAY), 0)
        first = np.where(first < stop, first, 0)
        base = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
        top = cum[np.maximum(stop - 1, 0)]
        pos = np.searchsorted(cum, base + u[at] * (top - base), side="right")
        pos = np.minimum(np.maximum(pos, first), np.maximum(stop - 1, 0))
        near = follows[at]
        root_pos[at[~near]] = pos[~near]
        pos[near] = np.clip(root_pos[root[at[near]]] + offset[at[near]], 0, np.maximum(stop[near] - 1, 0))
        picked[at] = np.where(stop > 0, members[pos], -1)
    missing = picked < 0  # nothing of the cluster released yet: any released item, by appeal
    if missing.any():
        stop = np.maximum(np.searchsorted(catalogue.all_release, times[missing], side="right"), 1)
        pos = np.searchsorted(catalogue.all_cum, u[missing] * catalogue.all_cum[stop - 1], side="right")
        picked[missing] = catalogue.all_order[np.minimum(pos, stop - 1)]
    return picked

"""Pair features for the pointwise ranker, computed from what is known at a cut time.

The ranker scores (user, candidate) pairs with signals the towers cannot use cheaply:
the retrieval score, the item's popularity now and lately, its age in the catalogue,
the user's activity and demographics, the user's genre affinity for the item, and how
similar the candidate is to the items in the user's history. Every statistic comes
from the events before the cut, so training on one window and scoring the next never
sees a label through a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from movierec.models.history_sums import history_sums
from movierec.models.inputs import Catalogue, UserDirectory, user_histories

DAY = 86_400
DENSE_FEATURES = [
    "retrieval_score",
    "item_log_count",
    "item_log_recent",
    "item_recent_share",
    "item_mean_rating",
    "item_log_age_days",
    "item_year",
    "user_log_count",
    "user_mean_rating",
    "user_log_days_since_last",
    "user_is_cold",
    "user_age",
    "user_age_known",
    "genre_affinity",
    "genre_affinity_max",
    "history_similarity",
    "history_similarity_max",
    "recent_similarity",
    "cooccurrence",
    "cooccurrence_mean",
    "ease_score",
    "ease_recency_score",
    "genre_affinity_recent",
]
CATEGORICAL_FEATURES = ["gender", "occupation"]


@dataclass
class RankingContext:
    """Everything the pair features need, as of ``cut``.

    Attributes:
        catalogue: the known items with statistics from the known events.
        item_embeddings: candidate-tower embeddings, row-aligned with the catalogue.
        histories: each known user's item ids, oldest first.
        user_stats: known users' activity (count, mean rating, last time), by user id.
        users: demographics directory (may include users with no known events).
        cut: the time the features describe.
        global_mean: mean rating of the known events.
        cooccurrence: item-item cosine of co-occurrence in the known events (top neighbours
            per item), catalogue-aligned; it measures how often the candidate is consumed
            together with the user's history items.
        ease: EASE's item-item weights (Steck 2019) fitted on the known events, each
            column pruned to its largest entries, catalogue-aligned (CSR); the candidate's
            score is its column summed over the user's history, plainly and with each
            item weighted ``exp(-n / ease_tau)`` for ``n`` events before the user's last.
        ease_tau: the recency scale of that weighting, in events.
        dropped: dense features held at zero (the ablation's "without X" rows).
        blend: how the first stage blends the towers with the item neighbours of the
            history (:class:`movierec.models.blend.Blend`), or None for the towers alone.
    """

    catalogue: Catalogue
    item_embeddings: np.ndarray
    histories: dict[int, np.ndarray]
    user_stats: dict[int, tuple[float, float, float]]
    users: UserDirectory | None
    cut: int
    global_mean: float
    cooccurrence: Any = None
    ease: Any = None
    ease_tau: float = 10.0
    dropped: tuple[str, ...] = ()
    blend: Any = None

    def blender(self) -> Any:
        """The first stage's :class:`~movierec.models.blend.Blender` over this context's
        embeddings and co-occurrence, or None (no blend, or no co-occurrence)."""
        from movierec.models.blend import Blender

        if self.blend is None or self.cooccurrence is None:
            return None
        cached = self.__dict__.get("_blender")
        if cached is None or cached.blend != self.blend:
            cached = Blender(self.blend, self.item_embeddings, self.cooccurrence)
            self.__dict__["_blender"] = cached
        return cached

    @classmethod
    def build(
        cls,
        known: pa.Table,
        catalogue: Catalogue,
        item_embeddings: np.ndarray,
        users: UserDirectory | None,
        cut: int,
        neighbours: int = 100,
        ease: tuple[float, float] | None = None,
        ease_neighbours: int = 200,
        blend: Any = None,
    ) -> RankingContext:
        """Index the known events for fast per-pair lookups.

        Args:
            ease: ``(l2, tau)`` or ``(l2, tau, max_items)`` to fit the EASE features' weights,
                or None for none.
            ease_neighbours: entries kept per column of the EASE weights.
            blend: the first stage's :class:`~movierec.models.blend.Blend`, or None.
        """
        from movierec.features import user_features  # training side only: the service loads a built context

        empty = pa.table({"user_id": pa.array([], pa.int64())})
        stats = user_features(known, empty, cut)
        user_stats = {
            int(u): (float(c), float(m), float(d))
            for u, c, m, d in zip(
                stats.column("user_id").to_pylist(),
                stats.column("n_interactions").to_pylist(),
                stats.column("mean_rating").to_pylist(),
                stats.column("days_since_last").to_pylist(),
            )
        }
        ratings = known.column("rating").to_numpy()
        from movierec.baselines.itemknn import ItemKNN
        from movierec.data.matrix import InteractionMatrix, Vocab

        matrix = InteractionMatrix.from_table(known, items=Vocab(catalogue.item_id))
        similarity = ItemKNN(neighbours=neighbours, shrink=10.0).fit(matrix).similarity_
        ease_weights, tau = None, 10.0
        if ease is not None:
            ease_weights = ease_matrix(
                known, catalogue, float(ease[0]), ease_neighbours, int(ease[2]) if len(ease) > 2 else None
            )
            tau = float(ease[1])
        return cls(
            catalogue,
            item_embeddings,
            user_histories(known),
            user_stats,
            users,
            int(cut),
            float(ratings.mean()) if ratings.size else 3.0,
            similarity,
            ease_weights,
            tau,
            blend=blend,
        )

    def genre_matrix(self) -> tuple[np.ndarray, list[str]]:
        """Binary (n_items, n_genres) matrix over the catalogue's genre names."""
        names = sorted({g for g in self.catalogue.genres.ravel().tolist() if g})
        col = {g: j for j, g in enumerate(names)}
        out = np.zeros((len(self.catalogue), max(len(names), 1)), np.float32)
        for i, row in enumerate(self.catalogue.genres.tolist()):
            for g in row:
                if g:
                    out[i, col[g]] = 1.0
        return out, names


def ease_matrix(
    known: pa.Table, catalogue: Catalogue, l2: float, neighbours: int = 200, max_items: int | None = None
) -> Any:
    """EASE weights fitted on ``known`` over the catalogue, each column pruned to its
    ``neighbours`` largest entries (CSR, catalogue-aligned). With ``max_items`` below the
    catalogue's size, EASE covers only that many most popular items (as the baseline does,
    ``baselines.ease_recency.max_items``); the others' rows and columns are empty."""
    from movierec.baselines.ease import GramEigen, pruned_weights
    from movierec.data.matrix import InteractionMatrix, Vocab

    matrix = InteractionMatrix.from_table(known, items=Vocab(catalogue.item_id))
    cap = len(catalogue) if max_items is None else min(len(catalogue), int(max_items))
    return pruned_weights(GramEigen.from_data(matrix, max_items=cap), l2, neighbours)


def pair_features(
    ctx: RankingContext,
    user_ids: np.ndarray,
    item_rows: np.ndarray,
    query_embeddings: np.ndarray,
    recent_items: int = 10,
) -> dict[str, np.ndarray]:
    """Named feature columns for each (user, catalogue row) pair.

    Args:
        ctx: the known past.
        user_ids: one user id per pair.
        item_rows: one catalogue row per pair.
        query_embeddings: one query embedding per pair (the user's).
        recent_items: how many of the latest history items count as "recent".

    Returns:
        ``DENSE_FEATURES`` as float32 arrays and ``CATEGORICAL_FEATURES`` as string arrays.
    """
    cat = ctx.catalogue
    n = len(user_ids)
    items = ctx.item_embeddings[item_rows]
    genres, _ = ctx.genre_matrix()
    item_genres = genres[item_rows]
    out: dict[str, Any] = {
        "retrieval_score": np.einsum("ij,ij->i", query_embeddings, items),
        "item_log_count": np.log1p(cat.n_interactions[item_rows]),
        "item_log_recent": np.log1p(cat.n_recent[item_rows]),
        "item_recent_share": cat.n_recent[item_rows] / np.maximum(cat.n_interactions[item_rows], 1.0),
        "item_mean_rating": np.nan_to_num(cat.mean_rating[item_rows], nan=ctx.global_mean),
        "item_log_age_days": np.log1p(np.maximum(ctx.cut - cat.first_ts[item_rows], 0) / DAY),
        "item_year": (cat.year[item_rows] - 1990.0) / 20.0,
    }
    counts = np.zeros(n, np.float32)
    means = np.full(n, ctx.global_mean, np.float32)
    since = np.zeros(n, np.float32)
    affinity = np.zeros(n, np.float32)
    affinity_max = np.zeros(n, np.float32)
    similarity = np.zeros(n, np.float32)
    similarity_max = np.zeros(n, np.float32)
    recent_similarity = np.zeros(n, np.float32)
    cooc = np.zeros(n, np.float32)
    cooc_mean = np.zeros(n, np.float32)
    ease_plain = np.zeros(n, np.float32)
    ease_recent = np.zeros(n, np.float32)
    affinity_recent = np.zeros(n, np.float32)
    order = np.argsort(user_ids, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(user_ids[order])) + 1, n]
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per user: history rows, pairs, recency weights
    for start, stop in zip(bounds[:-1], bounds[1:]):
        idx = order[start:stop]
        user = int(user_ids[idx[0]])
        if user in ctx.user_stats:
            c, m, d = ctx.user_stats[user]
            counts[idx], means[idx], since[idx] = c, m, d
        history = ctx.histories.get(user)
        if history is None or history.size == 0:
            continue
        rows = cat.rows_of(history)
        rows = rows[rows >= 0]
        if rows.size == 0:
            continue
        share = genres[rows].mean(axis=0)
        affinity[idx] = item_genres[idx] @ share
        weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / ctx.ease_tau)  # oldest first
        recent_share = (weights @ genres[rows]) / weights.sum()
        affinity_recent[idx] = item_genres[idx] @ recent_share
        affinity_max[idx] = (item_genres[idx] * share[None, :]).max(axis=1)
        hist_emb = ctx.item_embeddings[rows]
        sims = items[idx] @ hist_emb.T
        similarity[idx] = sims.mean(axis=1)
        similarity_max[idx] = sims.max(axis=1)
        recent_similarity[idx] = sims[:, -recent_items:].mean(axis=1)
        seen.append((rows, idx, weights))
    # the collaborative sums over each history, for every pair at once (history_sums)
    if seen:
        histories, pairs, decays = (list(column) for column in zip(*seen))
        lengths = np.zeros(n, np.float32)
        for rows, idx, _ in seen:
            lengths[idx] = rows.size
        if ctx.cooccurrence is not None:
            cooc = history_sums(ctx.cooccurrence, histories, pairs, item_rows).plain.astype(np.float32)
            cooc_mean = np.divide(cooc, lengths, out=np.zeros(n, np.float32), where=lengths > 0)
        if ctx.ease is not None:
            sums = history_sums(ctx.ease, histories, pairs, item_rows, decays)
            ease_plain, ease_recent = sums.plain.astype(np.float32), sums.weighted
    out.update(
        {
            "user_log_count": np.log1p(counts),
            "user_mean_rating": means,
            "user_log_days_since_last": np.log1p(since),
            "user_is_cold": (counts == 0).astype(np.float32),
            "genre_affinity": affinity,
            "genre_affinity_max": affinity_max,
            "history_similarity": similarity,
            "history_similarity_max": similarity_max,
            "recent_similarity": recent_similarity,
            "cooccurrence": cooc,
            "cooccurrence_mean": cooc_mean,
            "ease_score": ease_plain,
            "ease_recency_score": ease_recent,
            "genre_affinity_recent": affinity_recent,
        }
    )
    demo = ctx.users.lookup(user_ids) if ctx.users is not None else {}
    age = demo.get("age", np.full(n, np.nan, np.float32))
    out["user_age"] = np.nan_to_num((age - 30.0) / 12.0, nan=0.0)
    out["user_age_known"] = np.isfinite(age).astype(np.float32)
    for name in CATEGORICAL_FEATURES:
        out[name] = demo.get(name, np.full(n, "", dtype=object)).astype(object)
    for name in ctx.dropped:
        out[name] = np.zeros(n, np.float32)
    return {k: (v.astype(np.float32) if k in DENSE_FEATURES else v) for k, v in out.items()}

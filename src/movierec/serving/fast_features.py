"""The chain's per-request work for one user, from arrays built once per bundle.

Training computes the ranker's pair features (:func:`~movierec.models.ranking_features.pair_features`)
and the first stage's item-neighbour scores (:class:`~movierec.models.blend.Blender`) for
many users at once, with SciPy sparse slicing that costs about a millisecond per call
whatever its size. A request scores one user, so here:

- the item-only features are computed for the whole catalogue at load and indexed;
- the item-item matrices (co-occurrence, EASE, the blend's similarity) are held dense when
  they fit :data:`DENSE_BUDGET_BYTES` (ML-100K's do), so a user's sums are one fancy-indexed
  block; a larger catalogue's are read as raw CSR arrays (the history rows gathered with
  one vectorised index and summed per column with ``np.bincount``), never by building a
  sparse row slice per request;
- the item-neighbour candidates use a boolean mask rather than ``np.setdiff1d``.

The results equal the training code's up to float summation order. That is checked when a
bundle loads (:func:`check_features`, :func:`check_blender`, on real users): if either
disagrees beyond a tolerance, the service uses the training code instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.models.blend import Blender
from movierec.models.ranking_features import CATEGORICAL_FEATURES, DAY, DENSE_FEATURES, RankingContext, pair_features

RECENT_ITEMS = 10  # pair_features' default "recent" window
# the features read from the user's history: every dense feature but the retrieval score,
# the item-only ones and the user-level ones
HISTORY_FEATURES = tuple(n for n in DENSE_FEATURES if n != "retrieval_score" and not n.startswith(("item_", "user_")))
FEATURE_TOLERANCE = 1e-4  # absolute, on float32 features of order one


DENSE_BUDGET_BYTES = 64 * 1024 * 1024  # an item-item matrix this small is held dense


class Rows:
    """A CSR matrix as raw arrays, for weighted sums of a few of its rows (any catalogue size)."""

    def __init__(self, matrix: Any):
        csr = sp.csr_matrix(matrix)
        self.indptr = csr.indptr.astype(np.int64)
        self.indices = csr.indices.astype(np.int64)
        self.data = csr.data.astype(np.float64)
        self.n_cols = csr.shape[1]

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(columns, values, row position)`` of every stored entry of ``rows`` (repeats count)."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())
        offsets = np.cumsum(lengths) - lengths
        take = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
        return self.indices[take], self.data[take], np.repeat(np.arange(rows.size), lengths)

    def full(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``sum_r w_r * matrix[r, :]`` over every column."""
        columns, values, which = self._gather(rows)
        return np.bincount(columns, weights=values * weights[which], minlength=self.n_cols)

    def restricted(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``sum_r w_r * matrix[r, cols]`` (``w`` = 1 when None)."""
        columns, values, which = self._gather(rows)
        if weights is not None:
            values = values * weights[which]
        return np.bincount(columns, weights=values, minlength=self.n_cols)[cols]

    def restricted_both(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``restricted`` plain and weighted, from one gather."""
        columns, values, which = self._gather(rows)
        plain = np.bincount(columns, weights=values, minlength=self.n_cols)[cols]
        weighted = np.bincount(columns, weights=values * weights[which], minlength=self.n_cols)[cols]
        return plain, weighted


class Dense:
    """The same sums over a dense copy (a small catalogue: one gathered block per request)."""

    def __init__(self, matrix: Any, dtype: Any):
        self.matrix = np.asarray(sp.csr_matrix(matrix).toarray(), dtype)
        self.matrix.setflags(write=False)
        self.flat = self.matrix.reshape(-1)
        self.n_cols = self.matrix.shape[1]

    def full(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``sum_r w_r * matrix[r, :]`` over every column."""
        return weights @ self.matrix[rows]

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``matrix[rows][:, cols]`` (one flat ``take``: about twice as fast as ``np.ix_``)."""
        return self.flat.take(rows[:, None] * self.n_cols + cols[None, :])

    def restricted(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``sum_r w_r * matrix[r, cols]`` (``w`` = 1 when None)."""
        block = self.block(rows, cols)
        return block.sum(axis=0, dtype=np.float64) if weights is None else weights @ block

    def restricted_both(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``restricted`` plain and weighted, from one gathered block."""
        block = self.block(rows, cols)
        return block.sum(axis=0, dtype=np.float64), weights @ block


def item_matrix(matrix: Any, dtype: Any = np.float32) -> Rows | Dense:
    """The fastest reader of an item-item matrix that fits :data:`DENSE_BUDGET_BYTES` dense."""
    n_rows, n_cols = matrix.shape
    if n_rows * n_cols * np.dtype(dtype).itemsize <= DENSE_BUDGET_BYTES:
        return Dense(matrix, dtype)
    return Rows(matrix)


PROFILE_BUDGET_BYTES = 64 * 1024 * 1024  # per (known users x items) table precomputed at load


class UserProfiles:
    """What a known user's requests would compute from their history, computed once at load.

    For each user the bundle knows (served without a history of the request's own or
    feedback): the history as catalogue rows, the co-occurrence and EASE sums over it for
    every item, and the blend's item-neighbour scores, as (users x items) tables, each one
    sparse history matrix times the item-item matrix. Built only when every table fits
    :data:`PROFILE_BUDGET_BYTES` (ML-100K's take about 30 MB in all); a larger user base
    uses the per-request sums.
    """

    def __init__(self, ctx: RankingContext, blender: Blender | None):
        n_items = len(ctx.catalogue)
        self.users = list(ctx.histories)
        self.index = {int(u): i for i, u in enumerate(self.users)}
        # as the pair features read a history (every event) and as retrieval does (each item
        # once, first occurrence first: Recommender.history_of)
        self.rows: list[np.ndarray] = []
        self.unique_rows: list[np.ndarray] = []
        for user in self.users:
            rows = ctx.catalogue.rows_of(np.asarray(ctx.histories[user], np.int64))
            rows = rows[rows >= 0]
            self.rows.append(rows)
            self.unique_rows.append(rows[np.sort(np.unique(rows, return_index=True)[1])])
        self.cooccurrence = self._table(ctx.cooccurrence, self.rows, np.ones, n_items, np.float32)
        self.ease = self._table(ctx.ease, self.rows, np.ones, n_items, np.float32)
        self.ease_recent = self._table(
            ctx.ease,
            self.rows,
            lambda size: np.exp(-np.arange(size - 1, -1, -1, dtype=np.float64) / ctx.ease_tau),
            n_items,
            np.float32,
        )
        self.share: np.ndarray | None = None  # set by attach_genres: each user's genre shares
        self.recent_share: np.ndarray | None = None
        self.neighbours = None
        if blender is not None:
            limit = blender.blend.max_history

            def recent(size: int) -> np.ndarray:
                weights = np.zeros(size)
                keep = min(size, limit)
                weights[size - keep :] = np.exp(-np.arange(keep - 1, -1, -1, dtype=np.float64) / blender.blend.tau)
                return weights

            self.neighbours = self._table(blender.similarity, self.unique_rows, recent, n_items, np.float64)

    def attach_genres(self, genres: np.ndarray, tau: float) -> None:
        """Each user's genre share of their history, plainly and recency-weighted (as the
        pair features compute them per request)."""
        share, recent = [], []
        for rows in self.rows:
            if rows.size == 0:
                share.append(np.zeros(genres.shape[1], genres.dtype))
                recent.append(np.zeros(genres.shape[1]))
                continue
            weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / tau)
            share.append(genres[rows].mean(axis=0))
            recent.append((weights @ genres[rows]) / weights.sum())
        self.share, self.recent_share = np.stack(share), np.stack(recent)

    @staticmethod
    def fits(n_users: int, n_items: int) -> bool:
        """Whether the tables of this many users and items fit the budget."""
        return n_users * n_items * 8 <= PROFILE_BUDGET_BYTES

    @staticmethod
    def _table(
        matrix: Any, histories: list[np.ndarray], weights_of: Any, n_items: int, dtype: Any
    ) -> np.ndarray | None:
        """``sum_j w_j * matrix[history_j, :]`` for every user's history (one row per user)."""
        if matrix is None:
            return None
        lengths = np.array([r.size for r in histories], np.int64)
        users = np.repeat(np.arange(len(histories)), lengths)
        columns = np.concatenate(histories) if histories else np.array([], np.int64)
        weights = np.concatenate([weights_of(int(n)) for n in lengths]) if histories else np.array([])
        history = sp.csr_matrix((weights, (users, columns)), shape=(len(histories), n_items))
        table = np.asarray((history @ sp.csr_matrix(matrix, dtype=np.float64)).toarray(), dtype)
        table.setflags(write=False)
        return table


class ServingBlender(Blender):
    """A :class:`Blender` whose per-request work reads raw CSR arrays (same scores)."""

    def __init__(self, blender: Blender, profiles: UserProfiles | None = None):
        self.__dict__.update(blender.__dict__)
        self._rows = item_matrix(self.similarity, np.float64)
        self.profiles = profiles if profiles is not None and profiles.neighbours is not None else None

    def neighbours_of(self, user: int | None, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`neighbours` of a known user's own history (``user``, precomputed) or of ``history_rows``."""
        index = self.profiles.index.get(user) if self.profiles is not None and user is not None else None
        if index is None:
            return self.neighbours(history_rows)
        scores = self.profiles.neighbours[index]
        support = np.flatnonzero(scores > 0)
        return support, scores[support]

    def neighbours(self, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The neighbour score's support and values for one history (as :meth:`Blender.neighbours`)."""
        rows = np.asarray(history_rows, np.int64)
        rows = rows[rows >= 0][-self.blend.max_history :]
        if rows.size == 0:
            return np.array([], np.int64), np.array([], np.float64)
        weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / self.blend.tau)
        scores = self._rows.full(rows, weights)
        support = np.flatnonzero(scores > 0)
        return support, scores[support]

    def full_scores(
        self, query: np.ndarray, tower_scores: np.ndarray, history_rows: np.ndarray, user: int | None = None
    ) -> np.ndarray:
        """Blended scores of every catalogue item (as :meth:`Blender.full_scores`); ``user``: a
        known user served on their own history (neighbour scores precomputed)."""
        index = self.profiles.index.get(user) if self.profiles is not None and user is not None else None
        if index is None:
            return super().full_scores(query, tower_scores, history_rows)
        scores = self.profiles.neighbours[index]
        positive = scores > 0  # the support, as Blender.neighbours keeps it
        a, b = self.scale(query, scores[positive])
        return np.asarray(tower_scores, np.float64) * a + b * np.where(positive, scores, 0.0)

    def candidates(
        self,
        query: np.ndarray,
        tower_rows: np.ndarray,
        tower_scores: np.ndarray,
        history_rows: np.ndarray,
        item_embeddings: np.ndarray,
        user: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Blended scores of the index's rows and the neighbours' support (as
        :meth:`Blender.candidates`); ``user``: a known user served on their own history."""
        support, values = self.neighbours_of(user, history_rows)
        a, b = self.scale(query, values)
        tower_rows = np.asarray(tower_rows, np.int64)
        position = np.full(self.n_items, -1, np.int64)
        position[tower_rows] = np.arange(tower_rows.size)
        extra = support[position[support] < 0]
        rows = np.concatenate([tower_rows, extra])
        position[extra] = np.arange(tower_rows.size, rows.size)
        scores = np.concatenate(
            [np.asarray(tower_scores, np.float64), np.asarray(item_embeddings[extra] @ query, np.float64)]
        )
        scores *= a
        scores[position[support]] += b * values
        return rows, scores


class ServingFeatures:
    """The ranker's pair features for one user and many candidates (as ``pair_features``)."""

    def __init__(self, ctx: RankingContext):
        self.ctx = ctx
        cat = ctx.catalogue
        every = np.arange(len(cat))
        # item-only features of every row, as pair_features computes them (then float32)
        self.item_features = {
            "item_log_count": np.log1p(cat.n_interactions[every]),
            "item_log_recent": np.log1p(cat.n_recent[every]),
            "item_recent_share": cat.n_recent[every] / np.maximum(cat.n_interactions[every], 1.0),
            "item_mean_rating": np.nan_to_num(cat.mean_rating[every], nan=ctx.global_mean),
            "item_log_age_days": np.log1p(np.maximum(ctx.cut - cat.first_ts[every], 0) / DAY),
            "item_year": (cat.year[every] - 1990.0) / 20.0,
        }
        self.item_features = {k: v.astype(np.float32) for k, v in self.item_features.items()}
        self.genres, _ = ctx.genre_matrix()
        self.cooccurrence = item_matrix(ctx.cooccurrence) if ctx.cooccurrence is not None else None
        self.ease = item_matrix(ctx.ease) if ctx.ease is not None else None
        self.item_id = cat.item_id
        self.profiles: UserProfiles | None = None

    def __call__(
        self, user: int, history: np.ndarray | None, item_rows: np.ndarray, query: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Features of ``(user, row)`` for each of ``item_rows``.

        Args:
            user: the user id (``-1`` for none).
            history: the user's item ids, oldest first (None: the context's history of ``user``).
            item_rows: catalogue rows of the candidates.
            query: the user's query embedding.
        """
        n = item_rows.size
        out: dict[str, np.ndarray] = {name: values[item_rows] for name, values in self.item_features.items()}
        out.update(self.pair_columns(user, history, item_rows, query))
        for name, value in self.user_constants(user).items():
            out[name] = np.full(n, value, dtype=object if name in CATEGORICAL_FEATURES else np.float32)
        for name in self.ctx.dropped:
            out[name] = np.zeros(n, np.float32)
        return {k: (v.astype(np.float32, copy=False) if k in DENSE_FEATURES else v) for k, v in out.items()}

    def user_constants(
        self, user: int, age: float | None = None, gender: str | None = None, occupation: str | None = None
    ) -> dict[str, Any]:
        """The features equal for every pair of ``user``: activity, demographics (the request's
        ``age``, ``gender`` and ``occupation`` replace the known ones when given)."""
        ctx = self.ctx
        count, mean, since = ctx.user_stats.get(user, (0.0, ctx.global_mean, 0.0))
        demo = ctx.users.lookup(np.array([user], np.int64)) if ctx.users is not None else {}
        known_age = demo.get("age", np.array([np.nan], np.float32))[0]
        out: dict[str, Any] = {
            "user_log_count": np.log1p(np.float32(count)),
            "user_mean_rating": np.float32(mean),
            "user_log_days_since_last": np.log1p(np.float32(since)),
            "user_is_cold": np.float32(count == 0),
            "user_age": np.float32(0.0 if not np.isfinite(known_age) else (known_age - 30.0) / 12.0),
            "user_age_known": np.float32(np.isfinite(known_age)),
        }
        for name in CATEGORICAL_FEATURES:
            out[name] = demo[name][0] if name in demo else ""
        if gender:
            out["gender"] = gender
        if occupation:
            out["occupation"] = occupation
        if age is not None:
            out["user_age"], out["user_age_known"] = np.float32((age - 30.0) / 12.0), np.float32(1.0)
        return out

    def pair_columns(
        self, user: int, history: np.ndarray | None, item_rows: np.ndarray, query: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The features that differ per pair: the retrieval score and those of the history."""
        ctx = self.ctx
        items = ctx.item_embeddings[item_rows]
        out = {"retrieval_score": (items @ np.asarray(query, items.dtype)).astype(np.float32)}
        zeros = np.zeros(item_rows.size, np.float32)
        history_features = dict.fromkeys(HISTORY_FEATURES, zeros)
        profile = self.profiles.index.get(user) if self.profiles is not None and history is None else None
        if profile is not None:
            rows = self.profiles.rows[profile]
            if rows.size:
                history_features = self._history_features(rows, item_rows, items, profile)
            history = ()
        if history is None:
            history = ctx.histories.get(user)
        if history is not None and len(history):
            rows = ctx.catalogue.rows_of(np.asarray(history, np.int64))
            rows = rows[rows >= 0]
            if rows.size:
                history_features = self._history_features(rows, item_rows, items)
        out.update(history_features)
        return out

    def _history_features(
        self, rows: np.ndarray, item_rows: np.ndarray, items: np.ndarray, profile: int | None = None
    ) -> dict[str, np.ndarray]:
        ctx = self.ctx
        genres = self.genres
        item_genres = genres[item_rows]
        weights = None
        if profile is not None and self.profiles.share is not None:
            share, recent_share = self.profiles.share[profile], self.profiles.recent_share[profile]
        else:
            share = genres[rows].mean(axis=0)
            weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / ctx.ease_tau)  # oldest first
            recent_share = (weights @ genres[rows]) / weights.sum()
        sims = items @ ctx.item_embeddings[rows].T
        out = {
            "genre_affinity": item_genres @ share,
            "genre_affinity_recent": item_genres @ recent_share,
            "genre_affinity_max": (item_genres * share[None, :]).max(axis=1),
            "history_similarity": sims.mean(axis=1),
            "history_similarity_max": sims.max(axis=1),
            "recent_similarity": sims[:, -RECENT_ITEMS:].mean(axis=1),
        }
        zeros = np.zeros(item_rows.size, np.float32)
        if profile is not None:  # a known user on their own history: the sums were made at load
            profiles = self.profiles
            for name, table in (("cooccurrence", profiles.cooccurrence), ("ease_score", profiles.ease)):
                out[name] = table[profile, item_rows] if table is not None else zeros
            out["cooccurrence_mean"] = out["cooccurrence"] / rows.size
            out["ease_recency_score"] = (
                profiles.ease_recent[profile, item_rows] if profiles.ease_recent is not None else zeros
            )
            return {k: np.asarray(v, np.float32) for k, v in out.items()}
        if self.cooccurrence is not None:
            summed = self.cooccurrence.restricted(rows, item_rows)
            out["cooccurrence"], out["cooccurrence_mean"] = summed, summed / rows.size
        else:
            out["cooccurrence"], out["cooccurrence_mean"] = zeros, zeros
        if self.ease is not None:
            if weights is None:
                weights = np.exp(-np.arange(rows.size - 1, -1, -1, dtype=np.float64) / ctx.ease_tau)
            out["ease_score"], out["ease_recency_score"] = self.ease.restricted_both(rows, item_rows, weights)
        else:
            out["ease_score"], out["ease_recency_score"] = zeros, zeros
        return {k: np.asarray(v, np.float32) for k, v in out.items()}


CHECK_ROWS = 5_000
"""About how many catalogue rows a load-time check spreads over a large catalogue."""


def check_rows(n: int, first: int = 100, every: int = 10, most: int = CHECK_ROWS) -> np.ndarray:
    """The catalogue rows a load-time check compares on: the first ``first`` and every
    ``every``-th, the step widened on a large catalogue so that about ``most`` are spread
    over it (every tenth of a million items made the checks 25 of a 1M-item bundle's 59 s
    load; up to 50,000 items the rows are every tenth, as before)."""
    step = max(every, -(-n // most))
    return np.unique(np.concatenate([np.arange(min(first, n)), np.arange(0, n, step)]))


def check_features(fast: ServingFeatures, users: list[int], query_of: Any, n_items: int = 100) -> bool:
    """Whether ``fast`` reproduces ``pair_features`` for ``users`` (candidates: the first
    ``n_items`` rows plus a spread, see :func:`check_rows`); ``query_of(user)`` gives a
    user's query embedding."""
    ctx = fast.ctx
    rows = check_rows(len(ctx.catalogue), n_items)
    cases: list[tuple[int, np.ndarray | None, np.ndarray]] = []
    for user in users:
        q = query_of(user)
        cases.append((user, None, q))  # as known: the precomputed profile when there is one
        own = np.asarray(ctx.histories[user], np.int64)
        cases.append((user, own[::-1][: max(1, own.size // 2)].copy(), q))  # a request's own history
    if users:  # an unknown user who sends a history (with a repeat)
        some = np.asarray(ctx.histories[users[0]], np.int64)[:5]
        cases.append((-1, np.concatenate([some, some[:1]]), query_of(users[0])))
    for user, history, q in cases:
        if history is None:
            context = ctx
        elif hasattr(ctx, "with_history"):  # the service's context: its genre matrix is shared, not rebuilt
            context = ctx.with_history(user, history)
        else:
            context = dataclasses.replace(ctx, histories={user: history})
        want = pair_features(context, np.full(rows.size, user, np.int64), rows, np.repeat(q[None, :], rows.size, 0))
        got = fast(user, history, rows, q)
        if set(want) != set(got):
            return False
        for name, values in want.items():
            if name in DENSE_FEATURES:
                if not np.allclose(got[name], values, atol=FEATURE_TOLERANCE, rtol=1e-5):
                    return False
            elif not np.array_equal(got[name].astype(str), values.astype(str)):
                return False
    return True


def check_blender(
    fast: ServingBlender, slow: Blender, cases: list[tuple[int, np.ndarray, np.ndarray]], item_embeddings: np.ndarray
) -> bool:
    """Whether ``fast`` gives ``slow``'s candidates and blended scores for each
    ``(user, history rows, query embedding)`` case, from the rows and from the user's
    precomputed profile (the index's rows: every seventh catalogue row, spread wider on a large catalogue)."""
    tower_rows = check_rows(fast.n_items, first=0, every=7).astype(np.int64)
    for user, history_rows, q in cases:
        tower_scores = item_embeddings[tower_rows] @ q
        want_rows, want_scores = slow.candidates(q, tower_rows, tower_scores, history_rows, item_embeddings)
        want_order = np.argsort(want_rows)
        for by_user in (None, user):
            got_rows, got_scores = fast.candidates(q, tower_rows, tower_scores, history_rows, item_embeddings, by_user)
            got_order = np.argsort(got_rows)
            if not np.array_equal(want_rows[want_order], got_rows[got_order]):
                return False
            if not np.allclose(want_scores[want_order], got_scores[got_order], rtol=1e-9, atol=1e-9):
                return False
        every = item_embeddings @ q
        want_all = slow.full_scores(q, every, history_rows)
        for by_user in (None, user):
            if not np.allclose(fast.full_scores(q, every, history_rows, by_user), want_all, rtol=1e-9, atol=1e-9):
                return False
    return True

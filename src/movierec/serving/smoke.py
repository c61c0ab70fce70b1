"""The smoke test a bundle passes before it serves: every path answers, and answers right.

A manifest proves that a bundle's files are the ones it lists, not that they are good: an
attacker (or a bad build) can replace a part and recompute the manifest. So before a loaded
bundle is swapped in, its approximate indexes are compared with the exact top-k of the same
query embeddings, and the ranker path that serves is compared with the ranker SavedModel,
on a fixed sample of the bundle's own users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from movierec.models.faiss_index import search_faiss
from movierec.models.ranking_export import predict_exported
from movierec.models.ranking_features import pair_features

if TYPE_CHECKING:
    from movierec.serving.service import Recommender

SAMPLE_USERS = 20  # known users the checks query, drawn with SAMPLE_SEED: the same sample on every load
SAMPLE_SEED = 0
TOP_K = 10
# Mean top-10 overlap an approximate index must reach with the exact top-10 of the same
# embeddings. A correct index gets 1.0 on the tiny test bundle and 0.995-1.0 on ML-100K
# (20-user samples, seeds 0-4; the build tunes each index to recall >= index.target_recall,
# 0.95, and reports recall@100 0.986 for FAISS and 0.993 for ScaNN). A shuffled id map gets
# about k / catalogue size: 0.23-0.28 on the 40-item test bundle, 0.0 on ML-100K. 0.8 refuses
# those with a wide margin and leaves room for an index tuned to a lower target recall.
MIN_INDEX_OVERLAP = 0.8
RANKER_PAIRS_PER_USER = 50
# The ranker path that serves must reproduce the SavedModel within the load check's
# tolerances (see Recommender._checked_fast_ranker). Measured: at most 1.5e-7 on scores and
# 4.8e-7 on ratings (test bundle and ML-100K), float32 rounding; a tampered weight moves them
# by orders of magnitude more.
RANKER_SCORE_ATOL = 1e-5
RANKER_RATING_ATOL = 1e-4


class SmokeTestFailed(RuntimeError):
    """A loaded bundle answered wrongly: it is not swapped in."""


def smoke_test(candidate: Recommender) -> None:
    """Query every path of a freshly loaded bundle; raise :class:`SmokeTestFailed` if any fails.

    Checks that every index returns ``k`` items, that a history gets personal results, that
    ranking keeps its candidates, that each approximate index agrees with the exact top-k
    (:data:`MIN_INDEX_OVERLAP`), and that the ranker that serves agrees with its SavedModel.
    """
    from movierec.serving.service import UserQuery

    if not candidate.histories:
        raise SmokeTestFailed("the bundle knows no user: nothing to check its indexes and ranker on")
    users = sample_users(candidate)
    some_user = users[0]
    some_items = candidate.catalogue.item_id[:5].tolist()
    for index in ("scann", "faiss", "brute"):
        result = candidate.retrieve(UserQuery(user_id=some_user), [], 10, True, None, None, None, index)
        if len(result.item_ids) != 10:
            raise SmokeTestFailed(f"smoke query on {index} returned {len(result.item_ids)} items, not 10")
    cold = candidate.retrieve(UserQuery(user_id=None, history=some_items[:2]), [], 10, True, None, None, None, "brute")
    if cold.is_fallback:
        raise SmokeTestFailed("a user with a history got the popular fallback")
    ranked, _ = candidate.rank(UserQuery(user_id=some_user), [], some_items)
    if sorted(ranked.item_ids) != sorted(some_items):
        raise SmokeTestFailed("the ranker lost candidates")
    for index, overlap in index_overlaps(candidate, users).items():
        if overlap < MIN_INDEX_OVERLAP:
            raise SmokeTestFailed(
                f"the {index} index disagrees with brute force: mean top-{TOP_K} overlap {overlap:.2f} on "
                f"{len(users)} known users, below {MIN_INDEX_OVERLAP} (a corrupt or replaced index or id map)"
            )
    check_ranker(candidate, users)


def sample_users(candidate: Recommender) -> list[int]:
    """Up to :data:`SAMPLE_USERS` known users, the same ones for the same bundle."""
    users = np.array(sorted(int(u) for u in candidate.histories), np.int64)
    rng = np.random.default_rng(SAMPLE_SEED)
    return rng.choice(users, size=min(SAMPLE_USERS, users.size), replace=False).tolist()


def index_overlaps(candidate: Recommender, users: list[int]) -> dict[str, float]:
    """Each approximate index's mean top-k overlap with the exact top-k, over ``users``.

    The exact top-k ranks the whole catalogue by the tower score (query . item embedding),
    as ``index="brute"`` does. An index's item counts when its exact score reaches the
    k-th best, so items tied with the k-th do not count as misses.
    """
    from movierec.serving.service import UserQuery

    k = min(TOP_K, len(candidate.catalogue))
    hits: dict[str, list[float]] = {"scann": [], "faiss": []}
    for user in users:
        query = UserQuery(user_id=user)
        history = candidate.history_of(query, [])
        embedding = candidate.embed(query, history)
        scores = candidate.item_embeddings @ embedding
        kth = np.partition(scores, -k)[-k]
        found = {
            "scann": candidate.scann(**candidate.query_features(query, history))["item_ids"].numpy()[0],
            "faiss": search_faiss(candidate.faiss_index, candidate.faiss_ids, embedding[None, :], k)[1][0],
        }
        for index, ids in found.items():
            rows = {candidate.row_of[int(i)] for i in ids[:k] if int(i) in candidate.row_of}
            good = sum(1 for r in rows if scores[r] >= kth - 1e-6 * max(1.0, abs(float(kth))))
            hits[index].append(good / k)
    return {index: float(np.mean(values)) for index, values in hits.items()}


def check_ranker(candidate: Recommender, users: list[int]) -> None:
    """The ranker that serves (the NumPy fast path when it passed its load check) against the
    ranker SavedModel, on :data:`RANKER_PAIRS_PER_USER` seeded items for each of ``users``.

    The load check compares one user; this one spans the sample, so a fast path that agrees
    only on the first user is refused too.
    """
    from movierec.serving.service import UserQuery

    if candidate.fast_ranker is None:
        return  # the SavedModel itself serves: nothing else to compare
    rng = np.random.default_rng(SAMPLE_SEED)
    n = min(RANKER_PAIRS_PER_USER, len(candidate.catalogue))
    pair_users, rows, embeddings = [], [], []
    for user in users:
        query = UserQuery(user_id=user)
        embedding = candidate.embed(query, candidate.history_of(query, []))
        pair_users.append(np.full(n, user, np.int64))
        rows.append(rng.choice(len(candidate.catalogue), size=n, replace=False))
        embeddings.append(np.repeat(embedding[None, :], n, 0))
    pair_user = np.concatenate(pair_users)
    feats = pair_features(candidate.context, pair_user, np.concatenate(rows), np.concatenate(embeddings))
    got_scores, got_ratings = candidate.predict(feats)
    want_scores, want_ratings = predict_exported(candidate.ranker, feats)
    for what, got, want, atol in (
        ("scores", got_scores, want_scores, RANKER_SCORE_ATOL),
        ("ratings", got_ratings, want_ratings, RANKER_RATING_ATOL),
    ):
        gap = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
        if not np.all(gap <= atol):
            worst = int(np.argmax(gap))
            raise SmokeTestFailed(
                f"the served ranker disagrees with the ranker SavedModel: {what} differ by up to "
                f"{gap[worst]:.3g} (user {int(pair_user[worst])}; tolerance {atol}); "
                f"{int((gap > atol).sum())} of {gap.size} pairs (ranking/weights.npz corrupt or replaced)"
            )

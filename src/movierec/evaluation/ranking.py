"""Top-K ranking metrics (recall, NDCG, hit rate, MAP, precision, MRR) with binary relevance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from movierec.evaluation._validation import check_ks, check_recommended, check_relevant

# Users processed at once; bounds the (users, K_max) float work arrays to a few tens of MB.
_CHUNK_USERS = 32_768


def per_user_ranking_metrics(
    recommended: np.ndarray,
    relevant: sp.sparray | sp.spmatrix,
    ks: Sequence[int] = (10, 50, 100),
) -> dict[str, np.ndarray]:
    """Compute ranking metrics for every user, for slicing and significance tests.

    Relevance is binary: item ``i`` is relevant to user ``u`` when ``relevant[u, i]``
    is nonzero. With ``hits@K`` the number of relevant items among the top ``K`` and
    ``|rel|`` the user's number of relevant items:

    * ``recall@K = hits@K / min(K, |rel|)`` (so a perfect list scores 1 even when
      ``|rel| > K``);
    * ``precision@K = hits@K / K``; padded (``-1``) slots count as misses;
    * ``hitrate@K = 1`` if ``hits@K > 0`` else ``0``;
    * ``ndcg@K = DCG@K / IDCG@K`` with ``DCG@K = sum_{r<=K} rel_r / log2(r + 1)`` and
      ``IDCG@K = sum_{r<=min(K, |rel|)} 1 / log2(r + 1)``;
    * ``map@K``: ``AP@K = sum_{r<=K} precision@r * rel_r / min(K, |rel|)``;
    * ``mrr``: ``1 / rank`` of the first relevant item anywhere in the row, 0 if none.
      It looks at all ``K_max`` columns, i.e. it is MRR@K_max, not tied to ``ks``.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``; row ``u`` is user
            ``u``'s ranked item indices, best first, right-padded with ``-1``. Items
            must not repeat within a row.
        relevant: Sparse matrix (CSR preferred) of shape ``(n_users, n_items)``; rows
            align with ``recommended`` and every row must have a nonzero.
        ks: Cut-offs, each in ``1..K_max``; duplicates are ignored.

    Returns:
        A dict mapping ``recall@K``, ``ndcg@K``, ``hitrate@K``, ``map@K`` and
        ``precision@K`` for each ``K``, then ``mrr``, to float arrays of shape
        ``(n_users,)``.

    Raises:
        ValueError: If an argument is malformed: ``recommended`` not a 2-D integer
            array, items out of range, repeated or after padding; ``relevant`` not
            sparse, misaligned or with empty rows; a cut-off outside ``1..K_max``.
    """
    if not sp.issparse(relevant) or len(relevant.shape) != 2:
        raise ValueError(
            "relevant must be a 2-D scipy.sparse matrix (CSR), got "
            f"{type(relevant).__name__} of shape {getattr(relevant, 'shape', None)}"
        )
    rec = check_recommended(recommended, n_items=relevant.shape[1])
    n_users, k_max = rec.shape
    cutoffs = check_ks(ks, k_max)
    rel = check_relevant(relevant, n_users)

    names = [f"{m}@{k}" for k in cutoffs for m in ("recall", "ndcg", "hitrate", "map", "precision")]
    out = {name: np.empty(n_users, dtype=np.float64) for name in [*names, "mrr"]}

    ranks = np.arange(1, k_max + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    ideal_dcg = np.cumsum(discounts)
    n_relevant = np.diff(rel.indptr)
    k_top = max(cutoffs)

    for start in range(0, n_users, _CHUNK_USERS):
        stop = min(start + _CHUNK_USERS, n_users)
        hits = _hit_matrix(rec, rel, start, stop)
        top = hits[:, :k_top]
        cum_hits = np.cumsum(top, axis=1, dtype=np.int64)
        cum_dcg = np.cumsum(top * discounts[:k_top], axis=1)
        cum_ap = np.cumsum(np.where(top, cum_hits / ranks[:k_top], 0.0), axis=1)
        n_rel = n_relevant[start:stop]
        for k in cutoffs:
            n_hits = cum_hits[:, k - 1]
            denom = np.minimum(k, n_rel)
            out[f"recall@{k}"][start:stop] = n_hits / denom
            out[f"ndcg@{k}"][start:stop] = cum_dcg[:, k - 1] / ideal_dcg[denom - 1]
            out[f"hitrate@{k}"][start:stop] = n_hits > 0
            out[f"map@{k}"][start:stop] = cum_ap[:, k - 1] / denom
            out[f"precision@{k}"][start:stop] = n_hits / k
        first = np.argmax(hits, axis=1)
        out["mrr"][start:stop] = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return out


def ranking_metrics(
    recommended: np.ndarray,
    relevant: sp.sparray | sp.spmatrix,
    ks: Sequence[int] = (10, 50, 100),
) -> dict[str, float]:
    """Compute ranking metrics averaged over users.

    The definitions are those of :func:`per_user_ranking_metrics`; every user counts
    equally. ``mrr`` is MRR@K_max (it uses every column of ``recommended``).

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        relevant: Sparse matrix of shape ``(n_users, n_items)`` of held-out relevant
            items; every row must have a nonzero.
        ks: Cut-offs, each in ``1..K_max``.

    Returns:
        A dict mapping ``recall@K``, ``ndcg@K``, ``hitrate@K``, ``map@K``,
        ``precision@K`` (for each ``K``) and ``mrr`` to their means over users.

    Raises:
        ValueError: As for :func:`per_user_ranking_metrics`.
    """
    per_user = per_user_ranking_metrics(recommended, relevant, ks)
    return {name: float(values.mean()) for name, values in per_user.items()}


def _hit_matrix(rec: np.ndarray, rel: sp.csr_array, start: int, stop: int) -> np.ndarray:
    """Return the boolean matrix ``hits[u, j] = rec[u, j] is relevant to u`` for a user range.

    Each (user, item) pair is encoded as ``user * n_items + item``. The CSR of a
    canonical matrix lists these keys in ascending order, so one ``searchsorted``
    answers every lookup. Padding is masked out explicitly, because ``u * n_items - 1``
    is the key of the previous user's last item.

    Args:
        rec: Validated ``int64`` recommendations, shape ``(n_users, K_max)``.
        rel: Canonical CSR relevance matrix (sorted indices, no empty rows).
        start: First user of the range.
        stop: One past the last user of the range.

    Returns:
        Boolean array of shape ``(stop - start, K_max)``.
    """
    n_items = rel.shape[1]
    row_counts = np.diff(rel.indptr[start : stop + 1])
    users = np.arange(start, stop, dtype=np.int64)
    keys = np.repeat(users, row_counts) * n_items
    keys += rel.indices[rel.indptr[start] : rel.indptr[stop]]
    block = rec[start:stop]
    queries = users[:, None] * n_items + block
    positions = np.searchsorted(keys, queries)
    np.minimum(positions, keys.size - 1, out=positions)
    return (block >= 0) & (keys[positions] == queries)

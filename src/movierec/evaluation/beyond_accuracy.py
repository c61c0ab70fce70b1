"""Beyond-accuracy metrics of top-k lists: catalogue coverage, novelty, diversity, popularity Gini."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from movierec.evaluation._validation import check_k, check_positive_int, check_recommended

# Smallest popularity used by novelty, so that -log2(p) stays finite (about 39.9 bits).
MIN_POPULARITY = 1e-12

# Users per batch in intra_list_diversity; bounds the sparse (users, items) indicator.
_DIVERSITY_BATCH = 1_000


def catalogue_coverage(recommended: np.ndarray, n_items: int, k: int) -> float:
    """Fraction of the catalogue that appears in at least one user's top-k list.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        n_items: Size of the item catalogue (items are ``0..n_items-1``).
        k: Cut-off in ``1..K_max``.

    Returns:
        The number of distinct items recommended in any top-k list, over ``n_items``.

    Raises:
        ValueError: If ``n_items`` or ``k`` is not a valid positive integer, or
            ``recommended`` is malformed.
    """
    n_items = check_positive_int(n_items, "n_items")
    rec = check_recommended(recommended, n_items)
    k = check_k(k, rec.shape[1])
    return coverage_of_top(rec[:, :k], n_items)


def novelty(recommended: np.ndarray, item_popularity: np.ndarray, k: int) -> float:
    """Mean self-information ``-log2(p_i)`` of the recommended items.

    Each user's score is the mean of ``-log2(p_i)`` over the items of their top-k
    list (padding excluded); the result is the mean over users who have at least one
    item. Popularities are clipped to at least ``MIN_POPULARITY`` (1e-12), so an item
    with ``p = 0`` scores about 39.9 bits instead of infinity; callers who want a
    different smoothing should apply it before calling.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        item_popularity: Float array of shape ``(n_items,)``; entry ``i`` is the share
            of training users who interacted with item ``i``, in ``[0, 1]``.
        k: Cut-off in ``1..K_max``.

    Returns:
        The novelty in bits, or NaN if every top-k list is empty (all padding).

    Raises:
        ValueError: If ``item_popularity`` is not a 1-D array of finite values in
            ``[0, 1]``, ``recommended`` is malformed or ``k`` is out of range.
    """
    popularity = check_popularity(item_popularity)
    rec = check_recommended(recommended, popularity.size)
    k = check_k(k, rec.shape[1])
    return novelty_of_top(rec[:, :k], popularity)


def intra_list_diversity(recommended: np.ndarray, item_genres: sp.sparray | sp.spmatrix, k: int) -> float:
    """Mean pairwise genre dissimilarity within each top-k list (ILD).

    For each user, the mean over all unordered pairs of distinct items in the top-k
    list of ``1 - cos(g_i, g_j)``, with ``g_i`` the item's genre row; an item without
    genres has cosine 0 with every item. Lists with fewer than two items are skipped;
    the result is the mean over the remaining users. With non-negative genre weights
    the value lies in ``[0, 1]``: 0 when all items share identical genres, 1 when all
    genre sets are disjoint.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        item_genres: Sparse matrix of shape ``(n_items, n_genres)``, normally binary,
            with non-negative entries.
        k: Cut-off in ``1..K_max``.

    Returns:
        The diversity, or NaN if no top-k list has two items.

    Raises:
        ValueError: If ``item_genres`` is not a non-negative finite sparse matrix,
            ``recommended`` is malformed or ``k`` is out of range.
    """
    unit_genres = unit_genre_rows(item_genres)
    rec = check_recommended(recommended, unit_genres.shape[0])
    k = check_k(k, rec.shape[1])
    return diversity_of_top(rec[:, :k], unit_genres)


def popularity_concentration(recommended: np.ndarray, n_items: int, k: int) -> dict[str, float]:
    """Gini coefficient of how often each catalogue item is recommended.

    Counts, for every item of the catalogue, how many top-k lists contain it (items
    never recommended count as zero) and returns the Gini coefficient of those
    counts: 0 when every item is recommended equally often, ``(n_items - 1) / n_items``
    (close to 1) when every list holds the same single item.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        n_items: Size of the item catalogue.
        k: Cut-off in ``1..K_max``.

    Returns:
        ``{"gini@k": value}``; the value is NaN if no item is recommended at all.

    Raises:
        ValueError: If ``n_items`` or ``k`` is not a valid positive integer, or
            ``recommended`` is malformed.
    """
    n_items = check_positive_int(n_items, "n_items")
    rec = check_recommended(recommended, n_items)
    k = check_k(k, rec.shape[1])
    return {f"gini@{k}": gini_of_top(rec[:, :k], n_items)}


def check_popularity(item_popularity: object, n_items: int | None = None) -> np.ndarray:
    """Check item popularities and return them as a float64 array.

    Args:
        item_popularity: Array-like of shape ``(n_items,)`` with values in ``[0, 1]``.
        n_items: Expected length, or ``None`` to accept any non-zero length.

    Returns:
        The popularities as a 1-D ``float64`` array.

    Raises:
        ValueError: If the array is not 1-D, is empty or has the wrong length, or
            holds a value that is not finite or lies outside ``[0, 1]``.
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1 or popularity.size == 0:
        raise ValueError(f"item_popularity must be a non-empty 1-D array, got shape {popularity.shape}")
    if n_items is not None and popularity.size != n_items:
        raise ValueError(f"item_popularity has {popularity.size} entries but n_items={n_items}")
    if not np.all(np.isfinite(popularity)):
        raise ValueError("item_popularity holds NaN or infinite values")
    if popularity.min() < 0.0 or popularity.max() > 1.0:
        raise ValueError(
            "item_popularity must hold shares of users in [0, 1], got values in "
            f"[{popularity.min()}, {popularity.max()}]"
        )
    return popularity


def unit_genre_rows(item_genres: object, n_items: int | None = None) -> sp.csr_array:
    """Check the item-genre matrix and return it with every non-empty row scaled to unit length.

    Args:
        item_genres: Sparse matrix of shape ``(n_items, n_genres)`` with non-negative
            finite entries.
        n_items: Expected number of rows, or ``None`` to accept any non-zero number.

    Returns:
        A CSR copy whose rows have Euclidean norm 1 (rows without genres stay zero).

    Raises:
        ValueError: If ``item_genres`` is not a 2-D sparse matrix with at least one
            row, has the wrong number of rows, or holds a negative or non-finite entry.
    """
    if not sp.issparse(item_genres) or len(item_genres.shape) != 2:
        raise ValueError(
            f"item_genres must be a 2-D scipy.sparse matrix (n_items, n_genres), got {type(item_genres).__name__}"
        )
    genres = sp.csr_array(item_genres, dtype=np.float64, copy=True)
    if genres.shape[0] == 0:
        raise ValueError("item_genres has no rows; it needs one row per catalogue item")
    if n_items is not None and genres.shape[0] != n_items:
        raise ValueError(f"item_genres has {genres.shape[0]} rows but n_items={n_items}")
    if genres.nnz and (not np.all(np.isfinite(genres.data)) or genres.data.min() < 0.0):
        raise ValueError("item_genres must hold non-negative finite weights")
    norms = np.sqrt(np.asarray(genres.multiply(genres).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_array(sp.diags_array(scale) @ genres)


def item_counts(top: np.ndarray, n_items: int) -> np.ndarray:
    """Return how many of the given lists contain each item (padding ignored)."""
    return np.bincount(top[top >= 0], minlength=n_items)


def coverage_of_top(top: np.ndarray, n_items: int) -> float:
    """Catalogue coverage of already-validated top-k lists."""
    return float(np.count_nonzero(item_counts(top, n_items))) / n_items


def novelty_of_top(top: np.ndarray, popularity: np.ndarray) -> float:
    """Novelty of already-validated top-k lists; see :func:`novelty`."""
    valid = top >= 0
    n_valid = valid.sum(axis=1)
    information = -np.log2(np.maximum(popularity, MIN_POPULARITY))
    per_slot = np.where(valid, information[np.where(valid, top, 0)], 0.0)
    scored = n_valid > 0
    if not scored.any():
        return math.nan
    return float(np.mean(per_slot.sum(axis=1)[scored] / n_valid[scored]))


def diversity_of_top(top: np.ndarray, unit_genres: sp.csr_array) -> float:
    """Intra-list diversity of already-validated top-k lists; see :func:`intra_list_diversity`.

    Uses ``sum_{i != j} cos(i, j) = |sum_i v_i|^2 - sum_i |v_i|^2`` over the list's unit
    genre vectors ``v_i``, so no (k, k) similarity matrix is ever built.
    """
    n_users, k = top.shape
    n_items = unit_genres.shape[0]
    squared_norms = np.asarray(unit_genres.multiply(unit_genres).sum(axis=1)).ravel()
    total, n_scored = 0.0, 0
    for start in range(0, n_users, _DIVERSITY_BATCH):
        block = top[start : start + _DIVERSITY_BATCH]
        valid = block >= 0
        m = valid.sum(axis=1)
        rows = np.repeat(np.arange(block.shape[0]), k)[valid.ravel()]
        indicator = sp.csr_array((np.ones(rows.size), (rows, block[valid])), shape=(block.shape[0], n_items))
        summed = indicator @ unit_genres
        all_pairs = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
        self_pairs = indicator @ squared_norms
        scored = m >= 2
        if not scored.any():
            continue
        m_s = m[scored].astype(np.float64)
        mean_cosine = (all_pairs[scored] - self_pairs[scored]) / (m_s * (m_s - 1.0))
        total += float(np.clip(1.0 - mean_cosine, 0.0, 1.0).sum())
        n_scored += int(scored.sum())
    return total / n_scored if n_scored else math.nan


def gini_of_top(top: np.ndarray, n_items: int) -> float:
    """Gini coefficient of item recommendation counts of already-validated top-k lists.

    Uses ``G = 2 * sum_i i * x_(i) / (n * sum_i x_i) - (n + 1) / n`` over the counts
    sorted ascending, ``i = 1..n``.
    """
    counts = np.sort(item_counts(top, n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return math.nan
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, counts) / (n_items * total) - (n_items + 1) / n_items)

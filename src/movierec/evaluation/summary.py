"""One flat dict of every offline metric, for reports and experiment tracking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from movierec.evaluation._validation import check_ks, check_positive_int, check_recommended
from movierec.evaluation.beyond_accuracy import (
    check_popularity,
    coverage_of_top,
    diversity_of_top,
    gini_of_top,
    novelty_of_top,
    unit_genre_rows,
)
from movierec.evaluation.ranking import ranking_metrics


def summarise(
    recommended: np.ndarray,
    relevant: sp.sparray | sp.spmatrix,
    ks: Sequence[int],
    n_items: int,
    item_popularity: np.ndarray,
    item_genres: sp.sparray | sp.spmatrix,
) -> dict[str, float]:
    """Compute ranking and beyond-accuracy metrics in one pass over the inputs.

    Args:
        recommended: Integer array of shape ``(n_users, K_max)``, ranked best first,
            right-padded with ``-1``.
        relevant: Sparse matrix of shape ``(n_users, n_items)`` of held-out relevant
            items; every row must have a nonzero.
        ks: Cut-offs, each in ``1..K_max``.
        n_items: Size of the item catalogue.
        item_popularity: Float array of shape ``(n_items,)``, share of training users
            per item (see :func:`movierec.evaluation.novelty`).
        item_genres: Sparse matrix of shape ``(n_items, n_genres)``.

    Returns:
        The keys of :func:`movierec.evaluation.ranking_metrics`, then for each ``K``
        ``coverage@K``, ``novelty@K``, ``diversity@K`` and ``gini@K``.

    Raises:
        ValueError: If any argument is malformed, or ``relevant``,
            ``item_popularity`` and ``item_genres`` disagree with ``n_items``.
    """
    n_items = check_positive_int(n_items, "n_items")
    popularity = check_popularity(item_popularity, n_items)
    unit_genres = unit_genre_rows(item_genres, n_items)
    # relevant may carry extra columns past n_items: relevant items outside the catalogue
    # (first seen in the target period), which count against recall but cannot be hit
    if sp.issparse(relevant) and relevant.shape[-1] < n_items:
        raise ValueError(f"relevant has {relevant.shape[-1]} columns but n_items={n_items}")

    result = ranking_metrics(recommended, relevant, ks)
    rec = check_recommended(recommended, n_items)
    for k in check_ks(ks, rec.shape[1]):
        top = rec[:, :k]
        result[f"coverage@{k}"] = coverage_of_top(top, n_items)
        result[f"novelty@{k}"] = novelty_of_top(top, popularity)
        result[f"diversity@{k}"] = diversity_of_top(top, unit_genres)
        result[f"gini@{k}"] = gini_of_top(top, n_items)
    return result

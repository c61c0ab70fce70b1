"""Vocabularies and normalisation statistics, computed from the known past only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from movierec.models.inputs import Catalogue, UserDirectory


def build_vocab(
    user_ids: np.ndarray,
    catalogue: Catalogue,
    users: UserDirectory | None,
    min_token_count: int = 2,
    year_buckets: int = 10,
) -> dict[str, Any]:
    """Everything the towers look up, from the training users and the known catalogue.

    Args:
        user_ids: ids of the users with known events (the user vocabulary).
        catalogue: the known items and their metadata.
        users: demographics; only the known users' values enter the vocabularies.
        min_token_count: title tokens and tags rarer than this map to out-of-vocabulary.
        year_buckets: number of quantile buckets for the release year.

    Returns:
        A JSON-serialisable dict (it goes into the bundle's manifest).
    """
    known_users = np.unique(np.asarray(user_ids, dtype=np.int64))

    def tokens(matrix: np.ndarray | None, min_count: int) -> list[str]:
        if matrix is None:
            return []
        counts = Counter(t for t in matrix.ravel().tolist() if t)
        return sorted(t for t, c in counts.items() if c >= min_count)

    years = catalogue.year.astype(np.float64)
    edges = np.unique(np.quantile(years, np.linspace(0, 1, year_buckets + 1)[1:-1])).tolist()
    vocab: dict[str, Any] = {
        "user_id": known_users.tolist(),
        "item_id": catalogue.item_id.tolist(),
        "genres": tokens(catalogue.genres, 1),
        "title_tokens": tokens(catalogue.title_tokens, min_token_count),
        "tags": tokens(catalogue.tags, min_token_count),
        "year_edges": [float(e) for e in edges],
        "year_stats": (float(years.mean()), float(years.std() or 1.0)),
    }
    if users is not None:
        demo = users.lookup(known_users)
        if "age" in demo:
            ages = demo["age"][np.isfinite(demo["age"])]
            if ages.size:
                vocab["age"] = True
                vocab["age_stats"] = (float(ages.mean()), float(ages.std() or 1.0))
        for name in ("gender", "occupation"):
            if name in demo:
                values = sorted({v for v in demo[name].tolist() if v})
                if values:
                    vocab[name] = values
    return vocab


def query_feature_names(vocab: dict[str, Any]) -> list[str]:
    """The query tower's input names for a vocabulary (demographics only when present)."""
    return ["user_id", "history"] + [n for n in ("age", "gender", "occupation") if n in vocab]


def candidate_feature_names(vocab: dict[str, Any]) -> list[str]:
    """The candidate tower's input names for a vocabulary (tags only when present)."""
    return ["item_id", "genres", "title_tokens", "year"] + (["tags"] if vocab.get("tags") else [])

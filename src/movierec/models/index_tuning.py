"""Choosing each index's search settings per catalogue: the cheapest that reaches a target recall.

Fixed numbers do not carry from one catalogue to another: ``nprobe = 16`` of 100 lists
finds 98% of the exact top-100 on one catalogue and 90% on another. Here each index is
built once (FAISS) or once per setting (ScaNN's TFRS layer fixes its search settings at
construction), queried with the evaluation queries' embeddings, and scored against the
exact top-k. Settings are tried from the cheapest up; the first whose recall@k reaches
the target is kept, and the whole ladder is returned for the report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.models.faiss_index import search_faiss


def exact_top_k(queries: np.ndarray, embeddings: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """Item ids of the exact top-``k`` inner products, per query."""
    scores = queries @ embeddings.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return item_ids[top]


def recall_against(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each exact top-k row found in the same row of ``found``."""
    if truth.size == 0:
        return 1.0
    return float(np.mean([np.intersect1d(f[f >= 0], t).size / t.size for f, t in zip(found, truth)]))


def ladder(limit: int) -> list[int]:
    """1, 2, 4, ... up to and including ``limit``."""
    steps = [1]
    while steps[-1] < limit:
        steps.append(min(steps[-1] * 2, limit))
    return steps


def tune_faiss(
    index: Any, item_ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, target: float
) -> tuple[int, list[dict[str, float]]]:
    """The smallest ``nprobe`` (lists searched) whose recall@k reaches ``target``.

    Returns:
        ``(nprobe, tried)``; ``nprobe`` is every list when none reaches the target.
    """
    import faiss

    ivf = faiss.extract_index_ivf(index)
    tried = []
    chosen = int(ivf.nlist)
    for nprobe in ladder(int(ivf.nlist)):
        ivf.nprobe = nprobe
        start = time.perf_counter()
        _, found = search_faiss(index, item_ids, queries, k)
        ms = 1000 * (time.perf_counter() - start) / max(len(queries), 1)
        value = recall_against(found, truth)
        tried.append({"nprobe": nprobe, "recall": round(value, 4), "ms_per_query": round(ms, 4)})
        if value >= target:
            chosen = nprobe
            break
    ivf.nprobe = chosen
    return chosen, tried


def tune_scann(
    embeddings: np.ndarray,
    item_ids: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    k: int,
    base: dict[str, int],
    target: float,
) -> tuple[dict[str, int], list[dict[str, float]]]:
    """The cheapest ScaNN search settings (leaves searched, then candidates re-scored exactly)
    whose recall@k reaches ``target``; the leaves and quantisation of ``base`` are kept.

    Returns:
        ``(settings, tried)``; when nothing reaches the target, every leaf is searched with
        the most re-scoring tried.
    """
    n = len(item_ids)
    reorders = sorted({min(max(r, k), n) for r in (k, 2 * k, 5 * k, base["num_reordering_candidates"])})
    tried = []
    identity = tf.keras.layers.Lambda(lambda x: x)
    candidates = tf.data.Dataset.from_tensor_slices((tf.constant(item_ids.astype(str)), tf.constant(embeddings)))
    settings = {**base, "num_leaves_to_search": base["num_leaves"], "num_reordering_candidates": reorders[-1]}
    for reorder in reorders:
        for leaves in ladder(base["num_leaves"]):
            cfg = {**base, "num_leaves_to_search": leaves, "num_reordering_candidates": reorder}
            layer = tfrs.layers.factorized_top_k.ScaNN(identity, k=k, distance_measure="dot_product", **cfg)
            layer.index_from_dataset(candidates.batch(4096))
            start = time.perf_counter()
            _, ids = layer(tf.constant(queries))
            ms = 1000 * (time.perf_counter() - start) / max(len(queries), 1)
            found = np.array([[int(x) if x else -1 for x in row] for row in ids.numpy().astype(str)])
            value = recall_against(found, truth)
            tried.append(
                {
                    "num_leaves_to_search": leaves,
                    "num_reordering_candidates": reorder,
                    "recall": round(value, 4),
                    "ms_per_query": round(ms, 4),
                }
            )
            if value >= target:
                return cfg, tried
    return settings, tried

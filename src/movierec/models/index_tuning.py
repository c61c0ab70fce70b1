"""Choosing each index's search settings per catalogue: the cheapest that reaches a target recall.

Fixed numbers do not carry from one catalogue to another: ``nprobe = 16`` of 100 lists
finds 98% of the exact top-100 on one catalogue and 90% on another. Here each index is
built once (both FAISS and ScaNN take their search settings at query time), queried with
the tuning queries' embeddings, and scored against the exact top-k. Settings are tried
from the cheapest up; the first whose recall@k reaches the target is kept, and the whole
ladder is returned for the report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from movierec.models.faiss_index import search_faiss

QUERY_BLOCK = 64


def exact_top_k(queries: np.ndarray, embeddings: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """Item ids of the exact top-``k`` inner products, per query (scored :data:`QUERY_BLOCK`
    queries at a time, so a million-item catalogue needs a few hundred MB, not gigabytes)."""
    tops = []
    for start in range(0, len(queries), QUERY_BLOCK):
        scores = queries[start : start + QUERY_BLOCK] @ embeddings.T
        tops.append(np.argpartition(-scores, k - 1, axis=1)[:, :k])
    return item_ids[np.concatenate(tops)] if tops else np.zeros((0, k), item_ids.dtype)


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
    """The cheapest ScaNN search settings (leaves searched, then candidates re-scored exactly:
    k, 2k, 5k, ... up to ``base``'s ``num_reordering_candidates``) whose recall@k reaches
    ``target``; the leaves and quantisation of ``base`` are kept.

    One searcher is trained with ``base``'s structure (as the TFRS layer configures it) and
    asked with every setting of the ladder: ScaNN takes both at query time, so a million-item
    catalogue is partitioned once, not once per rung.

    Returns:
        ``(settings, tried)``; when nothing reaches the target, every leaf is searched with
        the most re-scoring tried.
    """
    from scann import scann_ops_pybind

    n = len(item_ids)
    ceiling = base["num_reordering_candidates"]
    steps = (k, 2 * k, 5 * k, 10 * k, 20 * k, 40 * k)  # a million items needs 20 k for recall@k 0.97
    reorders = sorted({min(max(r, k), n) for r in steps if r <= ceiling} | {min(max(ceiling, k), n)})
    builder = scann_ops_pybind.builder(np.ascontiguousarray(embeddings, np.float32), k, "dot_product")
    searcher = (
        builder.tree(
            num_leaves=base["num_leaves"],
            num_leaves_to_search=base["num_leaves"],
            training_iterations=base["training_iterations"],
        )
        .score_ah(base["dimensions_per_block"])
        .reorder(reorders[-1])
        .build()
    )
    tried = []
    settings = {**base, "num_leaves_to_search": base["num_leaves"], "num_reordering_candidates": reorders[-1]}
    for reorder in reorders:
        for leaves in ladder(base["num_leaves"]):
            cfg = {**base, "num_leaves_to_search": leaves, "num_reordering_candidates": reorder}
            start = time.perf_counter()
            rows, scores = searcher.search_batched(
                np.ascontiguousarray(queries, np.float32),
                final_num_neighbors=k,
                pre_reorder_num_neighbors=reorder,
                leaves_to_search=leaves,
            )
            ms = 1000 * (time.perf_counter() - start) / max(len(queries), 1)
            rows = np.asarray(rows, np.int64)
            found = np.where(np.isnan(scores), -1, np.asarray(item_ids, np.int64)[rows])
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

"""The four indexes ``movierec bench index`` compares, behind one small interface.

Each backend builds over ``(n, dim)`` float32 item embeddings, lists its search settings
from the cheapest up, and answers a batch of queries or one query with the ``k`` best rows by
inner product. One query is asked the way the service asks (:mod:`movierec.serving.service`):
brute force is NumPy's matrix-vector product and a partial sort over the whole catalogue;
FAISS goes through :func:`movierec.models.faiss_index.search_faiss`. ScaNN is asked through its
NumPy searcher (the service calls the same C++ searcher inside its ScaNN SavedModel, which adds
the query tower and TensorFlow's call overhead).

``index_bytes`` is the memory the built index holds: the embeddings themselves for brute force,
FAISS's vectors, ids and centroids (IVF) or vectors and graph links (HNSW), and the size of
ScaNN's serialized searcher (its quantized codes, partitions and the float rows it re-scores).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from movierec.models.faiss_index import ADD_CHUNK, build_faiss, lift_items, lift_queries, search_faiss
from movierec.models.index_bench_options import KINDS
from movierec.models.index_rules import IndexRules, faiss_nlist, scann_leaves


def geometric_ladder(start: int, stop: int, ratio: float = 1.5) -> list[int]:
    """Integers from ``start`` up to and including ``stop``, each about ``ratio`` times the last."""
    if start > stop:
        return [stop]
    steps = [start]
    while steps[-1] < stop:
        steps.append(min(stop, max(steps[-1] + 1, math.ceil(steps[-1] * ratio))))
    return steps


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` largest scores in each row of ``scores`` (best first)."""
    k = min(k, scores.shape[-1])
    top = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(top, order, axis=-1)


class Brute:
    """Exact scoring of every item: the baseline and the ground truth."""

    kind = "brute"
    QUERY_CHUNK = 64  # queries scored together in a batch (a 64 x n score matrix at a time)

    def __init__(self, rules: IndexRules, k: int):
        self.k = k
        self.items = np.zeros((0, 0), np.float32)

    def build(self, items: np.ndarray, progress: Any = None) -> None:
        self.items = np.ascontiguousarray(items, np.float32)
        if progress is not None:
            progress.update(len(items))

    def structure(self) -> dict[str, Any]:
        return {}

    def ladder(self) -> list[dict[str, Any]]:
        return [{}]

    def use(self, setting: dict[str, Any]) -> None:
        pass

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        chunks = [
            top_rows(queries[s : s + self.QUERY_CHUNK] @ self.items.T, k)
            for s in range(0, len(queries), self.QUERY_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, k), np.int64)

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return top_rows(self.items @ query, k)

    def index_bytes(self) -> int:
        return int(self.items.nbytes)


class FaissIVF:
    """FAISS IVF-Flat as the service builds it (:func:`movierec.models.faiss_index.build_faiss`:
    k-means lists in the lifted space), ``nprobe`` lists scanned exactly."""

    kind = "faiss-ivf"

    def __init__(self, rules: IndexRules, k: int):
        self.rules, self.k = rules, k
        self.index: Any = None
        self.ids = np.zeros(0, np.int64)

    def build(self, items: np.ndarray, progress: Any = None) -> None:
        cfg = {
            "nlist": faiss_nlist(len(items), self.rules),
            "nprobe": 1,
            "train_points_per_list": self.rules.faiss_train_points_per_list,
        }
        self.index = build_faiss(items, cfg, progress=progress)
        self.ids = np.arange(len(items), dtype=np.int64)

    def structure(self) -> dict[str, Any]:
        return {"nlist": int(self.index.nlist), "train_points_per_list": self.rules.faiss_train_points_per_list}

    def ladder(self) -> list[dict[str, Any]]:
        return [{"nprobe": p} for p in geometric_ladder(1, int(self.index.nlist))]

    def use(self, setting: dict[str, Any]) -> None:
        self.index.nprobe = int(setting["nprobe"])

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return search_faiss(self.index, self.ids, queries, k)[1]

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return search_faiss(self.index, self.ids, query[None, :], k)[1][0]

    def index_bytes(self) -> int:
        code = int(self.index.code_size) + 8  # the vector and its 64-bit id, per item
        return int(self.index.ntotal) * code + int(self.index.nlist) * int(self.index.d) * 4


class FaissHNSW(FaissIVF):
    """FAISS HNSW-Flat: a navigable small-world graph searched ``efSearch`` wide.

    A graph built on inner products reaches the long vectors poorly (measured: recall@100
    stalls near 0.9 whatever ``efSearch``), so it is built on the lifted items
    (:func:`movierec.models.faiss_index.lift_items`) and searched by Euclidean distance: the
    nearest lifted items are exactly those with the largest inner product.
    """

    kind = "faiss-hnsw"

    def build(self, items: np.ndarray, progress: Any = None) -> None:
        import faiss

        data = lift_items(items)
        index = faiss.IndexHNSWFlat(data.shape[1], self.rules.hnsw_m, faiss.METRIC_L2)
        index.hnsw.efConstruction = self.rules.hnsw_ef_construction
        for start in range(0, len(data), ADD_CHUNK):
            index.add(data[start : start + ADD_CHUNK])
            if progress is not None:
                progress.update(min(ADD_CHUNK, len(data) - start))
        self.index = index
        self.ids = np.arange(len(items), dtype=np.int64)

    def structure(self) -> dict[str, Any]:
        return {"M": self.rules.hnsw_m, "ef_construction": self.rules.hnsw_ef_construction, "transform": "mips-to-l2"}

    def ladder(self) -> list[dict[str, Any]]:
        return [{"ef_search": e} for e in geometric_ladder(self.k, 16 * self.k, ratio=math.sqrt(2))]

    def use(self, setting: dict[str, Any]) -> None:
        self.index.hnsw.efSearch = int(setting["ef_search"])

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return search_faiss(self.index, self.ids, lift_queries(queries), k)[1]

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return search_faiss(self.index, self.ids, lift_queries(query[None, :]), k)[1][0]

    def index_bytes(self) -> int:
        hnsw = self.index.hnsw
        links = int(hnsw.neighbors.size()) * 4 + int(hnsw.offsets.size()) * 8 + int(hnsw.levels.size()) * 4
        return int(self.index.ntotal) * int(self.index.d) * 4 + links


class Scann:
    """ScaNN (as the TFRS layer configures it): k-means leaves, anisotropic quantization,
    then exact re-scoring of the best ``reorder`` candidates."""

    kind = "scann"

    def __init__(self, rules: IndexRules, k: int):
        self.rules, self.k = rules, k
        self.searcher: Any = None
        self.leaves = 0
        self.setting: dict[str, Any] = {}

    def build(self, items: np.ndarray, progress: Any = None) -> None:
        from scann import scann_ops_pybind

        self.leaves = scann_leaves(len(items), self.rules)
        builder = scann_ops_pybind.builder(np.ascontiguousarray(items, np.float32), self.k, "dot_product")
        builder = builder.tree(
            num_leaves=self.leaves,
            num_leaves_to_search=min(self.leaves, 8),
            training_iterations=self.rules.scann_training_iterations,
        )
        self.searcher = builder.score_ah(self.rules.scann_dimensions_per_block).reorder(self._reorders()[-1]).build()
        if progress is not None:
            progress.update(len(items))
        self.setting = {"leaves_to_search": min(self.leaves, 8), "reorder": self._reorders()[0]}

    def _reorders(self) -> list[int]:
        # measured at 1M items: re-scoring 200 candidates caps recall@100 near 0.81, 500 near 0.91
        return [5 * self.k, 10 * self.k, 20 * self.k, 40 * self.k]

    def structure(self) -> dict[str, Any]:
        return {"num_leaves": self.leaves, "dimensions_per_block": self.rules.scann_dimensions_per_block}

    def ladder(self) -> list[dict[str, Any]]:
        return [
            {"leaves_to_search": leaves, "reorder": reorder}
            for reorder in self._reorders()
            for leaves in geometric_ladder(1, self.leaves)
        ]

    def use(self, setting: dict[str, Any]) -> None:
        self.setting = dict(setting)

    def _args(self, k: int) -> dict[str, int]:
        return {
            "final_num_neighbors": k,
            "pre_reorder_num_neighbors": max(k, int(self.setting["reorder"])),
            "leaves_to_search": int(self.setting["leaves_to_search"]),
        }

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return found_rows(*self.searcher.search_batched(queries, **self._args(k)))

    def search_batch_parallel(self, queries: np.ndarray, k: int) -> np.ndarray:
        return found_rows(*self.searcher.search_batched_parallel(queries, **self._args(k), batch_size=len(queries)))

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        rows, _ = self.searcher.search(query, **self._args(k))
        return np.asarray(rows, np.int64)

    def index_bytes(self) -> int:
        with tempfile.TemporaryDirectory(prefix="scann-size-") as tmp:
            self.searcher.serialize(tmp)
            return sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())


def found_rows(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ScaNN's batched rows as int64, with ``-1`` in the slots it could not fill (NaN score)."""
    return np.where(np.isnan(scores), -1, np.asarray(rows, np.int64))


BACKENDS: dict[str, type] = {b.kind: b for b in (Brute, FaissIVF, FaissHNSW, Scann)}


def make(kind: str, rules: IndexRules, k: int) -> Any:
    """A fresh, unbuilt backend of ``kind`` (one of :data:`KINDS`)."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown index {kind!r}; choose from {', '.join(KINDS)}")
    return BACKENDS[kind](rules, k)


def batches(queries: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``queries`` in consecutive slices of ``size`` rows."""
    for start in range(0, len(queries), size):
        yield queries[start : start + size]

"""FAISS inner-product IVF-Flat indexes: build, save, load and search.

Inner products are searched in a lifted space: every item gets one more coordinate,
``sqrt(max_norm^2 - |x|^2)``, so that all items are equally long, and a query gets a 0
there. The inner product of the lifted vectors is still ``q . x`` (the scores are exact),
but the k-means lists and the choice of lists to probe now work on Euclidean distances
among equally long vectors, where they are sound: on the raw vectors the long items pull
every list's centroid and a million-item catalogue needed 710 of 4000 lists probed for
recall@100 0.97, against 64 lifted (``movierec bench index``, docs/index-benchmark.md;
Bachrach et al., RecSys 2014). Indexes written before the lift (as many dimensions as the
queries) are searched as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from movierec.errors import DataError
from movierec.io import write_json
from movierec.models.layout import FAISS_IDS, FAISS_INDEX, FAISS_META

FAISS_FILE = FAISS_INDEX
ADD_CHUNK = 100_000  # rows added per call (one progress step)
LIFT = "mips-to-l2"


def lift_items(items: np.ndarray) -> np.ndarray:
    """``items`` (float32) with one more coordinate that makes every row as long as the longest."""
    items = np.asarray(items, np.float32)
    squared = np.einsum("ij,ij->i", items, items, dtype=np.float64)
    extra = np.sqrt(np.maximum(squared.max(initial=0.0) - squared, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([items, extra[:, None]]))


def lift_queries(queries: np.ndarray) -> np.ndarray:
    """Queries (float32) with the lifted space's extra coordinate, 0."""
    queries = np.asarray(queries, np.float32)
    return np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), np.float32)]))


def build_faiss(embeddings: np.ndarray, cfg: dict[str, Any], progress: Any = None) -> Any:
    """An inner-product IVF-Flat index over ``embeddings`` (row i = catalogue row i), lifted
    (see the module's docstring).

    Args:
        embeddings: ``(n_items, dim)`` item embeddings.
        cfg: ``nlist`` (inverted lists, at most ``n_items``) and ``nprobe`` (lists searched);
            optionally ``train_points_per_list``: k-means trains on at most this many points
            per list, a random sample of a larger catalogue (FAISS's default: 256).
        progress: a tqdm-like bar advanced by the rows added (optional).

    Returns:
        The trained and filled ``faiss.IndexIVFFlat`` over ``dim + 1`` dimensions: Euclidean
        lists (an L2 coarse quantizer, plain k-means), inner products within them.
    """
    data = lift_items(embeddings)
    dim = data.shape[1]
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cfg["nlist"], faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.cp.spherical = False  # FAISS normalises inner-product centroids; the lifted lists are Euclidean
    if cfg.get("train_points_per_list"):
        index.cp.max_points_per_centroid = int(cfg["train_points_per_list"])
    index.train(data)
    for start in range(0, len(data), ADD_CHUNK):
        index.add(data[start : start + ADD_CHUNK])
        if progress is not None:
            progress.update(min(ADD_CHUNK, len(data) - start))
    index.nprobe = cfg["nprobe"]
    return index


def save_faiss(index: Any, item_ids: np.ndarray, cfg: dict[str, Any], out_dir: Path) -> None:
    """Write ``index.faiss``, ``item_ids.npy`` and ``faiss.json`` into ``out_dir``.

    Args:
        index: from :func:`build_faiss`.
        item_ids: row -> item id.
        cfg: the effective settings (nlist, nprobe, metric), recorded in ``faiss.json``.
        out_dir: an existing folder.
    """
    faiss.write_index(index, str(out_dir / FAISS_FILE))
    np.save(out_dir / FAISS_IDS, np.asarray(item_ids, dtype=np.int64))
    write_json(out_dir / FAISS_META, cfg | {"dim": int(index.d), "n_items": int(index.ntotal)})


def load_faiss(directory: Path) -> tuple[Any, np.ndarray]:
    """Load a ``faiss/`` folder written by :func:`build_indexes`.

    Args:
        directory: the folder holding ``index.faiss``, ``item_ids.npy`` and ``faiss.json``.

    Returns:
        ``(index, item_ids)``: the FAISS index with its ``nprobe`` set, and row -> item id.

    Raises:
        DataError: a file is missing or the files disagree on the item count.
    """
    directory = Path(directory)
    for name in (FAISS_FILE, FAISS_IDS, FAISS_META):
        if not (directory / name).exists():
            raise DataError("FAISS index incomplete: file not found; run the index step first", path=directory / name)
    index = faiss.read_index(str(directory / FAISS_FILE))
    item_ids = np.load(directory / FAISS_IDS)
    meta = json.loads((directory / FAISS_META).read_text())
    if item_ids.size != index.ntotal:
        raise DataError(
            f"holds {item_ids.size} item ids but the index has {index.ntotal} vectors", path=directory / FAISS_IDS
        )
    faiss.extract_index_ivf(index).nprobe = int(meta["nprobe"])
    return index, item_ids


def search_faiss(
    index: Any, item_ids: np.ndarray, query_embeddings: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` items by inner product for each query embedding.

    Args:
        index: from :func:`load_faiss` (or built in memory).
        item_ids: row -> item id.
        query_embeddings: ``(n, dim)`` query embeddings.
        k: results per query; at most the number of indexed items are returned.

    Returns:
        ``(scores, ids)``, each ``(n, min(k, n_items))``: float32 scores, best first, and int64
        item ids; ``-1`` (score ``-inf``) where the probed lists held fewer than ``k`` items.
    """
    queries = np.asarray(query_embeddings, dtype=np.float32)
    queries = queries.reshape(-1, queries.shape[-1]) if queries.size else queries.reshape(0, index.d)
    if queries.shape[1] == index.d - 1:  # a lifted index (build_faiss): the queries' extra coordinate is 0
        queries = lift_queries(queries)
    queries = np.ascontiguousarray(queries.reshape(-1, index.d))
    k = min(int(k), int(index.ntotal))
    scores, rows = index.search(queries, k)
    ids = np.where(rows >= 0, np.asarray(item_ids, dtype=np.int64)[np.maximum(rows, 0)], -1)
    scores = np.where(rows >= 0, scores, -np.inf)
    return scores.astype(np.float32), ids.astype(np.int64)

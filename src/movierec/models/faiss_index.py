"""FAISS inner-product IVF-Flat indexes: build, save, load and search."""

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


def build_faiss(embeddings: np.ndarray, cfg: dict[str, Any]) -> Any:
    """An inner-product IVF-Flat index over ``embeddings`` (row i = catalogue row i).

    Args:
        embeddings: ``(n_items, dim)`` item embeddings.
        cfg: ``nlist`` (inverted lists, at most ``n_items``) and ``nprobe`` (lists searched).

    Returns:
        The trained and filled ``faiss.IndexIVFFlat``.
    """
    dim = embeddings.shape[1]
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cfg["nlist"], faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.train(data)
    index.add(data)
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
    queries = np.ascontiguousarray(np.asarray(query_embeddings, dtype=np.float32).reshape(-1, index.d))
    k = min(int(k), int(index.ntotal))
    scores, rows = index.search(queries, k)
    ids = np.where(rows >= 0, np.asarray(item_ids, dtype=np.int64)[np.maximum(rows, 0)], -1)
    scores = np.where(rows >= 0, scores, -np.inf)
    return scores.astype(np.float32), ids.astype(np.int64)

"""A real bundle with its catalogue enlarged by synthetic items: the service at catalogue scale.

Training a two-tower model on a million-item catalogue is out of reach on a small machine, but
the service's cost at that size comes from the catalogue, the embeddings and the indexes, not
from how the towers were trained. :func:`enlarge_bundle` therefore copies a trained bundle and:

1. appends synthetic items to its catalogue: each copies a real "parent" item's genres and
   tags, draws as many title tokens as the parent has from the catalogue's own (so titles
   mix words of different films), and moves the year by a few years; its id is new (the
   towers map it to their unknown-item slot, as they would a new release) and it has no
   interactions;
2. rebuilds the indexes with the real index step (:func:`movierec.models.index.build_indexes`):
   the candidate tower embeds every item, so the embeddings cluster around the real items'
   the way a trained catalogue's do, and the structure follows ``index.rules``;
3. widens the ranking context's item-by-item matrices (co-occurrence, EASE weights) with
   empty rows and columns for the new items, which no event ever touched;
4. reseals the manifest: every part's digest, the version, the index report, and a
   ``synthetic_catalogue`` entry (also in its params, so the version differs from the source's)
   saying how many items are synthetic, from which bundle and seed.

The result loads in the service like any bundle (its manifest check and smoke test included).
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from movierec.errors import DataError
from movierec.io import atomic_dir, atomic_file, read_json, write_json
from movierec.models.bundle import check_manifest, content_version, tree_hash
from movierec.models.export import CATALOGUE_WIDTHS_KEY
from movierec.models.index import build_indexes
from movierec.models.inputs import Catalogue
from movierec.models.layout import (
    CATALOGUE,
    CONTEXT_ARRAYS,
    EASE_WEIGHTS,
    MANIFEST,
    REQUIRED,
    BundleLayout,
)

SYNTHETIC_TAG = "synthetic_catalogue"
YEAR_JITTER = 3.0  # standard deviation, in years, of a synthetic item's year around its parent's


def synthetic_items(catalogue: Catalogue, n_new: int, seed: int) -> Catalogue:
    """``n_new`` synthetic items modelled on ``catalogue``'s (see the module's docstring).

    Args:
        catalogue: the real items.
        n_new: how many to make.
        seed: the random seed (same seed, same items).

    Returns:
        A Catalogue of the new items only, ids above every real one, in id order.
    """
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, len(catalogue), size=n_new)
    tokens = catalogue.title_tokens
    pool = tokens[tokens != ""]
    if pool.size == 0:
        pool = np.array(["item"], dtype=object)
    # as many title tokens as the parent has, each drawn from the catalogue's (by frequency)
    filled = tokens[parents] != ""
    title_tokens = np.where(filled, pool[rng.integers(0, pool.size, size=filled.shape)], "").astype(object)
    first = int(catalogue.item_id.max()) + 1 if len(catalogue) else 1
    item_ids = np.arange(first, first + n_new, dtype=np.int64)
    titles = catalogue.titles or [""] * len(catalogue)
    return Catalogue(
        item_id=item_ids,
        genres=catalogue.genres[parents].copy(),
        title_tokens=title_tokens,
        year=(catalogue.year[parents] + rng.normal(0.0, YEAR_JITTER, n_new)).round().astype(np.float32),
        tags=catalogue.tags[parents].copy() if catalogue.tags is not None else None,
        n_interactions=np.zeros(n_new, np.float32),
        n_recent=np.zeros(n_new, np.float32),
        mean_rating=np.full(n_new, np.nan, np.float32),
        first_ts=catalogue.first_ts[parents].copy(),
        titles=[f"{titles[p]} (synthetic {i})" for p, i in zip(parents.tolist(), item_ids.tolist())],
    )


def joined(a: Catalogue, b: Catalogue) -> Catalogue:
    """The rows of ``a`` then ``b`` (ids already in order)."""
    return Catalogue(
        item_id=np.concatenate([a.item_id, b.item_id]),
        genres=np.concatenate([a.genres, b.genres]),
        title_tokens=np.concatenate([a.title_tokens, b.title_tokens]),
        year=np.concatenate([a.year, b.year]),
        tags=np.concatenate([a.tags, b.tags]) if a.tags is not None and b.tags is not None else None,
        n_interactions=np.concatenate([a.n_interactions, b.n_interactions]),
        n_recent=np.concatenate([a.n_recent, b.n_recent]),
        mean_rating=np.concatenate([a.mean_rating, b.mean_rating]),
        first_ts=np.concatenate([a.first_ts, b.first_ts]),
        titles=list(a.titles or [""] * len(a)) + list(b.titles or [""] * len(b)),
    )


def widened(matrix: sp.spmatrix, n_items: int) -> sp.csr_matrix:
    """A square item-by-item matrix grown to ``n_items`` rows and columns (the new ones empty)."""
    csr = sp.csr_matrix(matrix)
    indptr = np.concatenate([csr.indptr, np.full(n_items - csr.shape[0], csr.indptr[-1], csr.indptr.dtype)])
    return sp.csr_matrix((csr.data, csr.indices, indptr), shape=(n_items, n_items))


def _widen_context(path: Path, item_ids: np.ndarray) -> None:
    """Rewrite ``context.npz`` for the enlarged catalogue (item ids, co-occurrence)."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    n_items = item_ids.size
    shape = tuple(int(x) for x in arrays["cooc_shape"])
    if shape != (0, 0):
        cooc = widened(
            sp.csr_matrix((arrays["cooc_data"], arrays["cooc_indices"], arrays["cooc_indptr"]), shape), n_items
        )
        arrays.update(cooc_indptr=cooc.indptr.astype(np.int64), cooc_shape=np.array(cooc.shape, np.int64))
    arrays["item_ids"] = item_ids.astype(np.int64)
    with atomic_file(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _widen_ease(path: Path, n_items: int) -> None:
    """Rewrite the EASE feature weights for the enlarged catalogue."""
    if path.exists():
        weights = widened(sp.load_npz(path), n_items)
        with atomic_file(path, "wb") as handle:
            sp.save_npz(handle, weights, compressed=True)


def _reseal(bundle: Path, source: dict[str, Any], note: dict[str, Any], index_report: dict[str, Any]) -> dict[str, Any]:
    """The source's manifest with the enlarged bundle's digests, version and index report."""
    parts = {part: tree_hash(bundle / part) for part in REQUIRED}
    params = {**source["params"], SYNTHETIC_TAG: note}
    metrics = {**source.get("metrics", {}), "index": index_report}
    manifest = {
        **source,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params,
        "parts": parts,
        "metrics": metrics,
        SYNTHETIC_TAG: note,
        "version": content_version(source["data_fingerprint"], params, parts),
    }
    write_json(bundle / MANIFEST, manifest)
    return manifest


def enlarge_bundle(
    source: Path, out: Path, n_items: int, index_params: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    """Write a copy of the bundle ``source`` whose catalogue holds ``n_items`` items.

    Args:
        source: a bundle folder (its manifest is checked first).
        out: the new bundle folder (replaced atomically when everything is written).
        n_items: the enlarged catalogue's size (more than the source's).
        index_params: the ``index`` section the indexes are rebuilt with.
        seed: the synthetic items' seed.

    Returns:
        ``{"manifest", "index", "seconds"}``: the new manifest, the index report and the
        seconds each step took.

    Raises:
        DataError: the source is not a valid bundle or already holds ``n_items`` items.
    """
    source, out = Path(source), Path(out)
    manifest = check_manifest(source)
    seconds: dict[str, float] = {}
    with atomic_dir(out) as tmp:
        start = time.perf_counter()
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        layout = BundleLayout(tmp)
        widths = read_json(layout.retrieval_meta)[CATALOGUE_WIDTHS_KEY]
        real = Catalogue.from_table(pq.read_table(layout.retrieval / CATALOGUE), widths)
        if n_items <= len(real):
            raise DataError(f"the bundle already holds {len(real)} items; ask for more than that", path=source)
        catalogue = joined(real, synthetic_items(real, n_items - len(real), seed))
        pq.write_table(catalogue.to_table(), layout.retrieval / CATALOGUE)
        _widen_context(layout.ranking / CONTEXT_ARRAYS, catalogue.item_id)
        _widen_ease(layout.ranking / EASE_WEIGHTS, n_items)
        seconds["catalogue"] = time.perf_counter() - start
        start = time.perf_counter()
        report = build_indexes(layout.retrieval, layout.retrieval, index_params)
        report["retrieval_dir"] = str(BundleLayout(out).retrieval)  # where it lies once moved into place
        write_json(layout.index_report, report)
        seconds["indexes"] = time.perf_counter() - start
        note = {
            "items": n_items,
            "real_items": len(real),
            "synthetic_items": n_items - len(real),
            "seed": seed,
            "source_version": manifest["version"],
        }
        new_manifest = _reseal(tmp, manifest, note, report)
    return {"manifest": new_manifest, "index": report, "seconds": {k: round(v, 2) for k, v in seconds.items()}}

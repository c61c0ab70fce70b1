"""The served bundle's layout: every folder and file name in it, spelled here only.

Writers (training, the index build, the manifest) and readers (the service, the manifest
check) take their names from this module, so the layout changes in one place.

    <bundle>/
      manifest.json                    the version, parts' hashes, metrics (bundle.py)
      retrieval/
        query_tower/, candidate_tower/ the towers as SavedModels
        query_tower/query_weights.npz  the query tower's NumPy fast path
        retrieval.json                 vocabulary, configuration, input schema
        catalogue.parquet              the catalogue the towers were fitted on
        brute/, scann/                 top-k SavedModels (topk.json beside each)
        faiss/                         index.faiss, item_ids.npy, faiss.json
        index.json                     the indexes' settings and recall against brute force
      ranking/
        pointwise/                     the ranker as a SavedModel
        ranker.json, weights.npz       its metadata and NumPy fast path
        ease.npz, ease.json            EASE weights of the ranking features
        rating_biases.npz              the served rating predictor
        context.npz, context.json      histories, user activity, co-occurrence, cut
        users.parquet                  the users' demographics (when the data have them)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"

RETRIEVAL = "retrieval"
QUERY_TOWER = "query_tower"
CANDIDATE_TOWER = "candidate_tower"
QUERY_WEIGHTS = "query_weights.npz"
RETRIEVAL_META = "retrieval.json"
CATALOGUE = "catalogue.parquet"
BRUTE = "brute"
SCANN = "scann"
FAISS = "faiss"
TOPK_META = "topk.json"
FAISS_INDEX, FAISS_IDS, FAISS_META = "index.faiss", "item_ids.npy", "faiss.json"
INDEX_REPORT = "index.json"

RANKING = "ranking"
RANKER = "pointwise"
RANKER_META = "ranker.json"
RANKER_WEIGHTS = "weights.npz"
EASE_WEIGHTS, EASE_META = "ease.npz", "ease.json"
RATING_BIASES = "rating_biases.npz"
CONTEXT_ARRAYS, CONTEXT_META = "context.npz", "context.json"
USERS_TABLE = "users.parquet"

# every part the manifest requires, relative to the bundle root, and what it is
REQUIRED = {
    f"{RETRIEVAL}/{QUERY_TOWER}": "query tower SavedModel",
    f"{RETRIEVAL}/{CANDIDATE_TOWER}": "candidate tower SavedModel",
    f"{RETRIEVAL}/{BRUTE}": "brute-force top-k SavedModel",
    f"{RETRIEVAL}/{SCANN}": "ScaNN top-k SavedModel",
    f"{RETRIEVAL}/{FAISS}": "FAISS index",
    f"{RETRIEVAL}/{RETRIEVAL_META}": "retrieval metadata",
    f"{RETRIEVAL}/{CATALOGUE}": "catalogue the towers were fitted on",
    f"{RANKING}/{RANKER}": "ranker SavedModel",
    f"{RANKING}/{RANKER_META}": "ranker metadata",
    f"{RANKING}/{EASE_WEIGHTS}": "EASE weights of the ranking features",
    f"{RANKING}/{EASE_META}": "EASE feature settings",
    f"{RANKING}/{RATING_BIASES}": "the served rating predictor (mean plus user and item biases)",
    f"{RANKING}/{CONTEXT_ARRAYS}": "the ranking context: histories, user activity, item co-occurrence",
    f"{RANKING}/{CONTEXT_META}": "the ranking context's cut and mean rating",
}


@dataclass(frozen=True)
class BundleLayout:
    """The paths of one bundle folder."""

    root: Path

    @property
    def manifest(self) -> Path:
        return Path(self.root) / MANIFEST

    @property
    def retrieval(self) -> Path:
        return Path(self.root) / RETRIEVAL

    @property
    def ranking(self) -> Path:
        return Path(self.root) / RANKING

    @property
    def scann(self) -> Path:
        return self.retrieval / SCANN

    @property
    def faiss(self) -> Path:
        return self.retrieval / FAISS

    @property
    def query_tower(self) -> Path:
        return self.retrieval / QUERY_TOWER

    @property
    def retrieval_meta(self) -> Path:
        return self.retrieval / RETRIEVAL_META

    @property
    def index_report(self) -> Path:
        return self.retrieval / INDEX_REPORT

    @property
    def ranker_meta(self) -> Path:
        return self.ranking / RANKER_META

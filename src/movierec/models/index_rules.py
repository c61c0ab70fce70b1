"""How the indexes' structure grows with the catalogue, and which index ``auto`` serves.

The rules were measured with ``movierec bench index`` (docs/index-benchmark.md): partitions
grow like the square root of the catalogue, so that each query scans about the same share of
the items at every size, and exact scoring is served only while it is as fast as an index.

* FAISS IVF lists: ``floor(faiss_lists_per_sqrt * sqrt(n))``, at most ``index.faiss.nlist``
  and at most ``n // 39`` (FAISS's k-means wants 39 training points per list); k-means trains
  on at most ``faiss_train_points_per_list`` points per list (a sample on large catalogues).
* ScaNN leaves: ``floor(scann_leaves_per_sqrt * sqrt(n))``, at most ``index.scann.num_leaves``.
* HNSW (benchmarked, not served): ``hnsw_m`` links per node, ``hnsw_ef_construction`` wide.
* ``auto``: exact scoring up to ``brute_max_items`` items, else ``approximate``.

How many lists or leaves are *searched* is not a rule: the build tunes it per catalogue
(:mod:`movierec.models.index_tuning`) and records it in ``index.json``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

FAISS_MIN_POINTS_PER_LIST = 39  # FAISS's own k-means warns below this many training points per centroid
APPROXIMATE = ("faiss", "scann")


@dataclass(frozen=True)
class IndexRules:
    """The structure rules with their constants (``index.rules`` and the ceilings in ``params.yaml``;
    the defaults live in :class:`movierec.settings.IndexSettings`, see :meth:`default`)."""

    brute_max_items: int
    approximate: str
    faiss_max_lists: int
    faiss_lists_per_sqrt: float
    faiss_train_points_per_list: int
    scann_max_leaves: int
    scann_leaves_per_sqrt: float
    scann_dimensions_per_block: int
    scann_training_iterations: int
    hnsw_m: int
    hnsw_ef_construction: int

    @classmethod
    def default(cls) -> IndexRules:
        """The rules of the shipped ``params.yaml`` (the typed settings' defaults)."""
        from movierec.settings import IndexSettings

        return cls.from_params(IndexSettings().model_dump())

    @classmethod
    def from_params(cls, index: dict[str, Any]) -> IndexRules:
        """The rules of a checked ``index`` section (as :meth:`Settings.as_params` gives it)."""
        rules = index["rules"]
        return cls(
            brute_max_items=int(rules["brute_max_items"]),
            approximate=str(rules["approximate"]),
            faiss_max_lists=int(index["faiss"]["nlist"]),
            faiss_lists_per_sqrt=float(rules["faiss_lists_per_sqrt"]),
            faiss_train_points_per_list=int(rules["faiss_train_points_per_list"]),
            scann_max_leaves=int(index["scann"]["num_leaves"]),
            scann_leaves_per_sqrt=float(rules["scann_leaves_per_sqrt"]),
            scann_dimensions_per_block=int(index["scann"]["dimensions_per_block"]),
            scann_training_iterations=int(index["scann"]["training_iterations"]),
            hnsw_m=int(rules["hnsw_m"]),
            hnsw_ef_construction=int(rules["hnsw_ef_construction"]),
        )

    def replace(self, **changes: Any) -> IndexRules:
        """A copy with some constants changed (the benchmark's command-line overrides)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _grown(n_items: int, per_sqrt: float) -> int:
    """``floor(per_sqrt * sqrt(n_items))`` (exact for perfect squares)."""
    if per_sqrt == 1:
        return math.isqrt(n_items)
    return math.floor(per_sqrt * math.sqrt(n_items) + 1e-9)


def faiss_nlist(n_items: int, rules: IndexRules) -> int:
    """Inverted lists of a FAISS IVF index over ``n_items`` items (at least 1)."""
    lists = min(
        _grown(n_items, rules.faiss_lists_per_sqrt), rules.faiss_max_lists, n_items // FAISS_MIN_POINTS_PER_LIST
    )
    return max(1, lists)


def scann_leaves(n_items: int, rules: IndexRules) -> int:
    """Partitions (leaves) of a ScaNN index over ``n_items`` items (at least 1)."""
    return max(1, min(_grown(n_items, rules.scann_leaves_per_sqrt), rules.scann_max_leaves))


def auto_index(n_items: int, rules: IndexRules) -> str:
    """The index ``auto`` serves for a catalogue of ``n_items`` items: exact scoring while it
    is as fast as an index, else the approximate index the rules name."""
    return "brute" if n_items <= rules.brute_max_items else rules.approximate

"""The index structure rules: partitions grow like sqrt(n), ML-100K keeps its settings, auto's choice."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.errors import ParamsError
from movierec.models.index import _faiss_settings, _scann_settings, _settings
from movierec.models.index_rules import IndexRules, auto_index, faiss_nlist, scann_leaves
from movierec.settings import IndexSettings

RULES = IndexRules.default()


def test_the_rules_come_from_the_typed_settings() -> None:
    index = IndexSettings().model_dump()
    assert RULES.faiss_max_lists == index["faiss"]["nlist"]
    assert RULES.scann_max_leaves == index["scann"]["num_leaves"]
    assert RULES.faiss_lists_per_sqrt == index["rules"]["faiss_lists_per_sqrt"]
    assert RULES.brute_max_items == index["rules"]["brute_max_items"]
    changed = RULES.replace(hnsw_m=8, faiss_lists_per_sqrt=None)
    assert changed.hnsw_m == 8 and changed.faiss_lists_per_sqrt == RULES.faiss_lists_per_sqrt


@pytest.mark.parametrize(
    ("n_items", "lists", "leaves"),
    [
        (40, 1, 6),  # the tiny test bundle: one list (FAISS wants 39 points per list)
        (160, 4, 12),
        (1_682, 43, 41),  # ML-100K: what the fixed settings gave before the rules (nlist 100 -> 43, leaves sqrt(n))
    ],
)
def test_small_catalogues_keep_their_former_structure(n_items: int, lists: int, leaves: int) -> None:
    assert faiss_nlist(n_items, RULES) == lists
    assert scann_leaves(n_items, RULES) == leaves


def test_partitions_grow_like_the_square_root_of_the_catalogue() -> None:
    rules = RULES.replace(faiss_lists_per_sqrt=4.0, scann_leaves_per_sqrt=1.0)
    assert faiss_nlist(1_000_000, rules) == 4_000
    assert faiss_nlist(100_000, rules) == 1_264  # floor(4 * 316.2)
    assert scann_leaves(1_000_000, rules) == 1_000
    assert scann_leaves(100_000, rules) == 316
    # ceilings hold
    assert faiss_nlist(10**9, rules) == rules.faiss_max_lists
    assert scann_leaves(10**9, rules) == rules.scann_max_leaves
    assert faiss_nlist(1, rules) == 1 and scann_leaves(1, rules) == 1


def test_auto_serves_exact_scoring_only_on_small_catalogues() -> None:
    rules = RULES.replace(brute_max_items=10_000, approximate="faiss")
    assert auto_index(1_682, rules) == "brute"
    assert auto_index(10_000, rules) == "brute"
    assert auto_index(10_001, rules) == "faiss"
    assert auto_index(1_000_000, rules.replace(approximate="scann")) == "scann"


def test_the_build_settings_follow_the_rules() -> None:
    settings = _settings({})
    rules = IndexRules.from_params(settings)
    faiss = _faiss_settings(settings["faiss"], 1_000_000, rules)
    assert faiss["nlist"] == faiss_nlist(1_000_000, rules)
    assert faiss["train_points_per_list"] == rules.faiss_train_points_per_list
    scann = _scann_settings(settings["scann"], 1_000_000, 100, rules)
    assert scann["num_leaves"] == scann_leaves(1_000_000, rules)
    assert scann["num_leaves_to_search"] <= scann["num_leaves"]


def test_bad_rules_name_the_key() -> None:
    with pytest.raises(ParamsError, match="index.rules.faiss_lists_per_sqrt"):
        _settings({"rules": {"faiss_lists_per_sqrt": 0}})
    with pytest.raises(ParamsError, match="index.rules.approximate"):
        _settings({"rules": {"approximate": "annoy"}})
    with pytest.raises(ParamsError, match="index.rules.nlists"):
        _settings({"rules": {"nlists": 3}})


def test_scann_tuning_trains_once_and_stops_at_the_first_setting_reaching_the_target() -> None:
    from movierec.models.index_tuning import exact_top_k, tune_scann

    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(100, 16)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64) + 7
    truth = exact_top_k(queries, items, ids, 20)
    base = {
        "num_leaves": 50,
        "num_leaves_to_search": 5,
        "dimensions_per_block": 2,
        "num_reordering_candidates": 100,
        "training_iterations": 8,
    }
    chosen, tried = tune_scann(items, ids, queries, truth, 20, base, 0.9)
    assert tried[-1]["recall"] >= 0.9 and all(row["recall"] < 0.9 for row in tried[:-1])
    assert chosen["num_leaves_to_search"] == tried[-1]["num_leaves_to_search"] and chosen["num_leaves"] == 50
    assert chosen["num_reordering_candidates"] == tried[-1]["num_reordering_candidates"]
    # an unreachable target: every leaf, the most re-scoring
    chosen, tried = tune_scann(items, ids, queries, truth, 20, base, 1.01)
    assert chosen["num_leaves_to_search"] == 50 and chosen["num_reordering_candidates"] == 100
    assert max(row["recall"] for row in tried) > 0.95  # searching every leaf with re-scoring is nearly exact

"""Tests for movierec.evaluation: every metric against values worked out by hand."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.evaluation import (
    MIN_POPULARITY,
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    per_user_ranking_metrics,
    popularity_concentration,
    ranking_metrics,
    rating_metrics,
    summarise,
)

N_ITEMS = 8

# Four users, K_max = 4, eight items. "x" marks a hit.
#   user 0: rec [0, 1x, 2, 3x]  relevant {1, 3, 5, 6, 7}  |rel| = 5 > K for both K = 2, 4
#   user 1: rec [4x, 2, -, -]   relevant {4}              |rel| = 1 < K, padded list
#   user 2: rec [5, 6, 7, 2x]   relevant {2, 3}           first hit at rank 4 only
#   user 3: rec [0, 1, -, -]    relevant {7}              no hit at all, padded list
RECOMMENDED = np.array(
    [
        [0, 1, 2, 3],
        [4, 2, -1, -1],
        [5, 6, 7, 2],
        [0, 1, -1, -1],
    ]
)
RELEVANT_SETS = [[1, 3, 5, 6, 7], [4], [2, 3], [7]]

L3, L4, L5 = math.log2(3), math.log2(4), math.log2(5)  # discounts of ranks 2, 3, 4


def relevance_matrix(sets: list[list[int]], n_items: int = N_ITEMS) -> sp.csr_matrix:
    """Build a binary CSR matrix whose row u holds the items of sets[u]."""
    rows = [u for u, items in enumerate(sets) for _ in items]
    cols = [i for items in sets for i in items]
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(sets), n_items))


# Per-user values computed by hand from the table above.
EXPECTED_PER_USER = {
    # K = 2: user 0 hits once (rank 2), user 1 once (rank 1), users 2 and 3 never.
    "recall@2": [1 / min(2, 5), 1 / min(2, 1), 0, 0],
    "precision@2": [1 / 2, 1 / 2, 0, 0],
    "hitrate@2": [1, 1, 0, 0],
    "ndcg@2": [(1 / L3) / (1 + 1 / L3), 1 / 1, 0, 0],
    # AP@2 of user 0: only rank 2 is a hit, precision@2 = 1/2, divided by min(2, 5).
    "map@2": [(1 / 2) / 2, (1 / 1) / 1, 0, 0],
    # K = 4: user 0 hits at ranks 2 and 4, user 1 at rank 1, user 2 at rank 4.
    "recall@4": [2 / min(4, 5), 1 / 1, 1 / min(4, 2), 0],
    "precision@4": [2 / 4, 1 / 4, 1 / 4, 0],
    "hitrate@4": [1, 1, 1, 0],
    "ndcg@4": [
        (1 / L3 + 1 / L5) / (1 + 1 / L3 + 1 / L4 + 1 / L5),  # IDCG over min(4, 5) = 4 ranks
        1 / 1,
        (1 / L5) / (1 + 1 / L3),  # IDCG over min(4, 2) = 2 ranks
        0,
    ],
    "map@4": [(1 / 2 + 2 / 4) / 4, 1 / 1, (1 / 4) / 2, 0],
    "mrr": [1 / 2, 1 / 1, 1 / 4, 0],
}


def test_per_user_ranking_metrics_match_hand_values() -> None:
    result = per_user_ranking_metrics(RECOMMENDED, relevance_matrix(RELEVANT_SETS), ks=(2, 4))
    assert set(result) == set(EXPECTED_PER_USER)
    for name, expected in EXPECTED_PER_USER.items():
        np.testing.assert_allclose(result[name], expected, rtol=0, atol=1e-12, err_msg=name)


def test_ranking_metrics_are_user_means_in_documented_key_order() -> None:
    result = ranking_metrics(RECOMMENDED, relevance_matrix(RELEVANT_SETS), ks=(2, 4))
    assert list(result) == [f"{m}@{k}" for k in (2, 4) for m in ("recall", "ndcg", "hitrate", "map", "precision")] + [
        "mrr"
    ]
    assert result["recall@4"] == pytest.approx((2 / 4 + 1 + 1 / 2 + 0) / 4)
    assert result["map@2"] == pytest.approx((1 / 4 + 1 + 0 + 0) / 4)
    assert result["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 4 + 0) / 4)
    assert all(isinstance(v, float) for v in result.values())


def test_mrr_uses_all_columns_not_only_ks() -> None:
    # With ks = (2,), user 2's hit at rank 4 is outside every cut-off but still counts.
    result = per_user_ranking_metrics(RECOMMENDED, relevance_matrix(RELEVANT_SETS), ks=(2,))
    np.testing.assert_allclose(result["mrr"], [1 / 2, 1, 1 / 4, 0])
    assert result["hitrate@2"][2] == 0


def test_perfect_ranking_scores_one_even_when_relevant_exceeds_k() -> None:
    rec = np.array([[3, 1, 0]])
    result = ranking_metrics(rec, relevance_matrix([[0, 1, 3, 5, 6]]), ks=(2, 3))
    for name in ("recall@2", "ndcg@2", "map@2", "precision@2", "recall@3", "ndcg@3", "map@3"):
        assert result[name] == pytest.approx(1.0), name


def test_relevance_ignores_explicit_zeros_and_values_and_accepts_other_formats() -> None:
    rel = relevance_matrix(RELEVANT_SETS)
    rel.data[:] = 4.5  # ratings rather than ones: relevance stays binary
    zero_stored = sp.csr_matrix((np.array([4.5, 0.0]), (np.array([0, 0]), np.array([1, 0]))), shape=(1, N_ITEMS))
    assert zero_stored.nnz == 2
    # Item 0 is stored with value 0, so it is not relevant: the only hit is item 1 at rank 2.
    only = per_user_ranking_metrics(np.array([[0, 1]]), zero_stored, ks=(2,))
    assert only["mrr"][0] == pytest.approx(1 / 2)
    assert zero_stored.nnz == 2, "the caller's matrix must not be modified"
    for matrix in (rel, rel.tocoo(), sp.csr_array(rel), rel.tocsc()):
        result = per_user_ranking_metrics(RECOMMENDED, matrix, ks=(2, 4))
        np.testing.assert_allclose(result["ndcg@4"], EXPECTED_PER_USER["ndcg@4"])


def test_vectorised_metrics_agree_with_a_direct_loop() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, k_max = 40, 30, 10
    rec = np.stack([rng.permutation(n_items)[:k_max] for _ in range(n_users)])
    for u in range(0, n_users, 5):
        rec[u, rng.integers(1, k_max) :] = -1
    sets = [list(rng.choice(n_items, size=rng.integers(1, 15), replace=False)) for _ in range(n_users)]
    result = per_user_ranking_metrics(rec, relevance_matrix(sets, n_items), ks=(3, 10))
    for u, rel in enumerate(sets):
        hits = [int(i in rel) for i in rec[u]]
        for k in (3, 10):
            denom = min(k, len(rel))
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits[:k]))
            idcg = sum(1 / math.log2(r + 2) for r in range(denom))
            ap = sum(sum(hits[: r + 1]) / (r + 1) * hits[r] for r in range(k)) / denom
            assert result[f"recall@{k}"][u] == pytest.approx(sum(hits[:k]) / denom)
            assert result[f"ndcg@{k}"][u] == pytest.approx(dcg / idcg)
            assert result[f"map@{k}"][u] == pytest.approx(ap)
        expected_rr = 1 / (hits.index(1) + 1) if 1 in hits else 0.0
        assert result["mrr"][u] == pytest.approx(expected_rr)


@pytest.mark.parametrize(
    ("recommended", "relevant", "ks", "message"),
    [
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS), (2, 5), r"ks=5 exceeds the 4 columns"),
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS), (0,), r"ks must be >= 1"),
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS), (), r"ks must hold at least one"),
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS), 2, r"ks must be a sequence"),
        (np.array([[0, 1, 0, 2]]), relevance_matrix([[1]]), (2,), r"duplicate items in 1 row.*item 0"),
        (RECOMMENDED, relevance_matrix([[1], [], [2], []]), (2,), r"relevant has 2 row\(s\) with no"),
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS[:3]), (2,), r"relevant has 3 rows but recommended has 4"),
        (RECOMMENDED, relevance_matrix([[1], [4], [2], [0]], n_items=6), (2,), r"recommended holds item index 7"),
        (np.array([[0, -1, 2]]), relevance_matrix([[1]]), (2,), r"row 0 has an item after a -1"),
        (np.array([[0, -2, 2]]), relevance_matrix([[1]]), (2,), r"item index -2"),
        (RECOMMENDED.astype(float), relevance_matrix(RELEVANT_SETS), (2,), r"recommended must hold integer"),
        (RECOMMENDED[0], relevance_matrix(RELEVANT_SETS[:1]), (2,), r"recommended must be 2-D"),
        (RECOMMENDED, relevance_matrix(RELEVANT_SETS).toarray(), (2,), r"relevant must be a 2-D scipy.sparse"),
    ],
)
def test_ranking_metrics_reject_bad_arguments(
    recommended: np.ndarray, relevant: object, ks: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_metrics(recommended, relevant, ks)  # type: ignore[arg-type]


def test_catalogue_coverage_counts_distinct_items_in_top_k() -> None:
    # top-1 items: {0, 4, 5}; top-2: {0, 1, 4, 2, 5, 6}; top-4: all eight items.
    assert catalogue_coverage(RECOMMENDED, N_ITEMS, 1) == pytest.approx(3 / 8)
    assert catalogue_coverage(RECOMMENDED, N_ITEMS, 2) == pytest.approx(6 / 8)
    assert catalogue_coverage(RECOMMENDED, N_ITEMS, 4) == pytest.approx(8 / 8)
    # A larger catalogue lowers coverage: 6 of 12 items.
    assert catalogue_coverage(RECOMMENDED, 12, 2) == pytest.approx(6 / 12)
    with pytest.raises(ValueError, match="k=5 exceeds"):
        catalogue_coverage(RECOMMENDED, N_ITEMS, 5)
    with pytest.raises(ValueError, match="n_items must be >= 1"):
        catalogue_coverage(RECOMMENDED, 0, 2)


def test_novelty_matches_hand_value_and_skips_padding() -> None:
    popularity = np.array([0.5, 0.25, 1.0, 0.125])
    rec = np.array([[0, 1, 3], [2, -1, -1]])
    # user 0, k = 2: (-log2 0.5 - log2 0.25) / 2 = (1 + 2) / 2; user 1: -log2 1 = 0 over one item.
    assert novelty(rec, popularity, 2) == pytest.approx(((1 + 2) / 2 + 0) / 2)
    # k = 3: user 0 averages 1, 2 and 3 bits.
    assert novelty(rec, popularity, 3) == pytest.approx(((1 + 2 + 3) / 3 + 0) / 2)


def test_novelty_clips_zero_popularity() -> None:
    popularity = np.array([0.0, 0.5])
    # -log2(1e-12) = 12 * log2(10) bits for the unseen item, 1 bit for item 1.
    expected = (12 * math.log2(10) + 1) / 2
    assert MIN_POPULARITY == 1e-12
    assert novelty(np.array([[0, 1]]), popularity, 2) == pytest.approx(expected)
    with pytest.raises(ValueError, match="item_popularity must hold shares"):
        novelty(np.array([[0, 1]]), np.array([0.5, 1.5]), 2)
    with pytest.raises(ValueError, match="item_popularity holds NaN"):
        novelty(np.array([[0, 1]]), np.array([0.5, np.nan]), 2)
    with pytest.raises(ValueError, match="item index 2"):
        novelty(np.array([[0, 2]]), popularity, 2)


def test_diversity_is_zero_for_identical_genres_and_one_for_disjoint() -> None:
    rec = np.array([[0, 1, 2], [2, 3, 0]])
    identical = sp.csr_matrix(np.tile([1, 1, 0], (4, 1)))
    disjoint = sp.csr_matrix(np.eye(4))
    assert intra_list_diversity(rec, identical, 3) == pytest.approx(0.0, abs=1e-12)
    assert intra_list_diversity(rec, disjoint, 3) == pytest.approx(1.0)


def test_diversity_matches_hand_value_with_genreless_item_and_short_lists() -> None:
    # item 0: {A, B}; item 1: {A}; item 2: {C}; item 3: no genre.
    genres = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]))
    rec = np.array([[0, 1, 2], [1, 3, -1], [2, -1, -1]])
    # user 0 pairs: (0,1) cos = 1/(sqrt2 * 1), (0,2) and (1,2) cos = 0
    user0 = ((1 - 1 / math.sqrt(2)) + 1 + 1) / 3
    # user 1: the genreless item has cosine 0 with item 1; user 2 has one item and is skipped.
    user1 = 1.0
    assert intra_list_diversity(rec, genres, 3) == pytest.approx((user0 + user1) / 2)
    # k = 1 leaves no list with two items.
    assert math.isnan(intra_list_diversity(rec, genres, 1))


def test_diversity_agrees_with_pairwise_loop() -> None:
    rng = np.random.default_rng(3)
    genres = sp.csr_matrix((rng.random((20, 6)) < 0.35).astype(float))
    rec = np.stack([rng.permutation(20)[:5] for _ in range(12)])
    dense = genres.toarray()

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        return float(a @ b / norm) if norm else 0.0

    per_user = [np.mean([1 - cosine(dense[i], dense[j]) for i, j in combinations(row, 2)]) for row in rec]
    assert intra_list_diversity(rec, genres, 5) == pytest.approx(np.mean(per_user))


def test_gini_is_zero_for_even_counts_and_matches_skewed_hand_value() -> None:
    even = np.array([[0, 1], [2, 3]])  # every one of 4 items recommended once
    assert popularity_concentration(even, 4, 2) == {"gini@2": pytest.approx(0.0, abs=1e-12)}
    # counts per item: [0, 0, 1, 3]; Gini = sum_ij |x_i - x_j| / (2 * n^2 * mean)
    skewed = np.array([[3, 2], [3, -1], [3, -1]])
    counts = [0, 0, 1, 3]
    mad_sum = sum(abs(a - b) for a in counts for b in counts)  # 20
    expected = mad_sum / (2 * 4**2 * (sum(counts) / 4))  # 20 / 32 = 0.625
    assert popularity_concentration(skewed, 4, 2)["gini@2"] == pytest.approx(expected)
    # all lists hold the same single item: (n - 1) / n
    assert popularity_concentration(np.array([[1], [1]]), 4, 1)["gini@1"] == pytest.approx(3 / 4)


def test_rating_metrics_hand_values_and_errors() -> None:
    result = rating_metrics([4.0, 3.0, 5.0, 1.0], [3.5, 3.0, 3.0, 2.0])
    # errors: -0.5, 0, -2, 1
    assert result["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 4 + 1) / 4))
    assert result["mae"] == pytest.approx((0.5 + 0 + 2 + 1) / 4)
    with pytest.raises(ValueError, match=r"y_true has shape \(3,\) but y_pred has shape \(2,\)"):
        rating_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        rating_metrics([], [])
    with pytest.raises(ValueError, match="y_pred holds NaN"):
        rating_metrics([1.0, 2.0], [1.0, np.nan])


def test_summarise_combines_every_metric() -> None:
    relevant = relevance_matrix(RELEVANT_SETS)
    popularity = np.linspace(0.1, 0.8, N_ITEMS)
    genres = sp.csr_matrix(np.eye(N_ITEMS)[:, :5])  # items 5..7 have no genre
    result = summarise(RECOMMENDED, relevant, (2, 4), N_ITEMS, popularity, genres)
    assert {k: v for k, v in result.items() if k in EXPECTED_PER_USER} == pytest.approx(
        ranking_metrics(RECOMMENDED, relevant, (2, 4))
    )
    for k in (2, 4):
        assert result[f"coverage@{k}"] == catalogue_coverage(RECOMMENDED, N_ITEMS, k)
        assert result[f"novelty@{k}"] == pytest.approx(novelty(RECOMMENDED, popularity, k))
        assert result[f"diversity@{k}"] == pytest.approx(intra_list_diversity(RECOMMENDED, genres, k))
        assert result[f"gini@{k}"] == pytest.approx(popularity_concentration(RECOMMENDED, N_ITEMS, k)[f"gini@{k}"])
    assert result["coverage@2"] == pytest.approx(6 / 8)
    assert result["diversity@2"] == pytest.approx(1.0)  # distinct one-hot or empty genres
    assert len(result) == 5 * 2 + 1 + 4 * 2  # 5 ranking keys per K, mrr, 4 more per K
    with pytest.raises(ValueError, match="item_popularity has 8 entries but n_items=9"):
        summarise(RECOMMENDED, relevant, (2,), 9, popularity, genres)
    with pytest.raises(ValueError, match="item_genres has 7 rows but n_items=8"):
        summarise(RECOMMENDED, relevant, (2,), N_ITEMS, popularity, genres[:7])

"""The promote-if-better rule, on its own (pure logic: no MLflow)."""

from __future__ import annotations

import pytest

from movierec.tracking.promotion import Candidate, candidate, decide, evaluation_key


def _version(version: str, ndcg: float, unmet: tuple[str, ...] = (), key: str = "same") -> Candidate:
    return Candidate(version, ndcg, unmet, key)


def test_the_first_version_that_meets_the_bars_is_promoted() -> None:
    decision = decide(_version("1", 0.30), [], 0.005)
    assert decision.promote and "first version" in decision.reason


def test_a_version_that_fails_a_bar_is_never_promoted_even_without_a_champion() -> None:
    decision = decide(_version("1", 0.50, ("chain_ndcg@10_over_ease",)), [], 0.005)
    assert not decision.promote and "chain_ndcg@10_over_ease" in decision.reason


@pytest.mark.parametrize(
    ("new", "promoted"),
    [(0.2960, True), (0.2910, True), (0.2909, False), (0.25, False)],
)
def test_within_the_tolerance_of_the_champion_on_the_same_evaluation(new: float, promoted: bool) -> None:
    decision = decide(_version("2", new), [_version("1", 0.2960)], 0.005)
    assert decision.promote is promoted
    assert "v1" in decision.reason and f"{new:.4f}" in decision.reason


def test_other_data_cannot_be_compared_so_the_bars_decide() -> None:
    decision = decide(_version("2", 0.10, key="new-data"), [_version("1", 0.30, key="old-data")], 0.005)
    assert decision.promote and "not compared" in decision.reason


def test_a_missing_metric_is_not_promoted() -> None:
    assert not decide(_version("2", float("nan")), [], 0.005).promote


def test_small_steps_down_cannot_walk_the_quality_down() -> None:
    # v2 was promoted within the tolerance of v1; v3 is within the tolerance of v2 but not of v1
    history = [_version("1", 0.3000), _version("2", 0.2960)]
    decision = decide(_version("3", 0.2920), history, 0.005)
    assert not decision.promote and "v1's 0.3000" in decision.reason
    assert decide(_version("3", 0.2955), history, 0.005).promote


def test_a_champion_without_a_metric_does_not_block_promotion() -> None:
    decision = decide(_version("2", 0.20), [_version("1", float("nan"))], 0.005)
    assert decision.promote and "not compared" in decision.reason


def test_candidate_reads_a_manifest() -> None:
    manifest = {
        "data_fingerprint": "abc",
        "params": {"split": {"method": "user_temporal"}, "evaluate": {"ks": [10]}, "retrieval": {"epochs": 3}},
        "metrics": {
            "test": {"chain": {"ndcg@10": 0.25}},
            "bars": {"a": {"met": True}, "b": {"met": False}},
        },
    }
    facts = candidate("7", manifest)
    assert facts == Candidate("7", 0.25, ("b",), evaluation_key("abc", manifest["params"]))
    # the key ignores settings that do not change the evaluation, and follows those that do
    assert evaluation_key("abc", {**manifest["params"], "retrieval": {"epochs": 9}}) == facts.evaluation_key
    assert evaluation_key("abd", manifest["params"]) != facts.evaluation_key
    assert candidate("8", {"metrics": {}}).unmet_bars == ("(no bars were evaluated)",)

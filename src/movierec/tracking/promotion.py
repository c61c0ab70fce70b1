"""Promote-if-better: whether a new model version becomes ``champion`` (pure logic, no MLflow).

A version is promoted only if every quality bar of its evaluation is met, and, when the
champion was evaluated on the same data with the same protocol (same evaluation key), its
chain NDCG@10 is not below the champion's by more than the tolerance. When the two were
evaluated on different data the NDCG values cannot be compared, so the bars decide alone and
the reason says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

METRIC = "ndcg@10"  # the chain's metric the rule compares


@dataclass(frozen=True)
class Candidate:
    """What the rule needs to know about one version."""

    version: str
    chain_ndcg: float
    unmet_bars: tuple[str, ...]
    evaluation_key: str


@dataclass(frozen=True)
class Decision:
    """Promote or not, and why (recorded on the version)."""

    promote: bool
    reason: str


def evaluation_key(data_fingerprint: str, params: dict[str, Any]) -> str:
    """A digest of what makes two evaluations comparable: the data, the split and the metrics' settings."""
    basis = {"data": data_fingerprint, "split": params.get("split"), "evaluate": params.get("evaluate")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:16]


def candidate(version: str, manifest: dict[str, Any]) -> Candidate:
    """The facts of a bundle's manifest (its ``metrics`` and ``params``) for the rule."""
    metrics = manifest.get("metrics", {})
    chain = metrics.get("test", {}).get("chain", {})
    bars = metrics.get("bars", {})
    unmet = tuple(sorted(name for name, bar in bars.items() if not bar.get("met")))
    if not bars:
        unmet = ("(no bars were evaluated)",)
    return Candidate(
        version=str(version),
        chain_ndcg=float(chain.get(METRIC, float("nan"))),
        unmet_bars=unmet,
        evaluation_key=evaluation_key(manifest.get("data_fingerprint", ""), manifest.get("params", {})),
    )


def decide(new: Candidate, champion: Candidate | None, tolerance: float) -> Decision:
    """The promote-if-better rule (see the module's docstring)."""
    if new.unmet_bars:
        return Decision(False, "quality bars not met: " + ", ".join(new.unmet_bars))
    if new.chain_ndcg != new.chain_ndcg:
        return Decision(False, f"no chain {METRIC} in the evaluation")
    if champion is None:
        return Decision(True, f"first version to meet every bar (chain {METRIC} {new.chain_ndcg:.4f})")
    if champion.evaluation_key != new.evaluation_key:
        return Decision(
            True,
            f"every bar met; champion v{champion.version} was evaluated on other data or settings, "
            f"so {METRIC} is not compared (new {new.chain_ndcg:.4f}, champion {champion.chain_ndcg:.4f})",
        )
    floor = champion.chain_ndcg - tolerance
    comparison = (
        f"chain {METRIC} {new.chain_ndcg:.4f} vs champion v{champion.version}'s {champion.chain_ndcg:.4f} "
        f"(tolerance {tolerance:g})"
    )
    if new.chain_ndcg >= floor:
        return Decision(True, f"every bar met and {comparison}")
    return Decision(False, f"worse than the champion: {comparison}")

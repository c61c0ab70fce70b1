"""Promote-if-better: whether a new model version becomes ``champion`` (pure logic, no MLflow).

A version is promoted only if every quality bar of its evaluation is met, and its chain
NDCG@10 is not below the best of the champions so far that were evaluated on the same data
with the same protocol (same evaluation key) by more than the tolerance. Comparing with the
best, not only the current champion, keeps a series of versions each a little worse than the
last from walking the quality down one tolerance at a time. When no champion so far was
evaluated the same way (new data), the NDCG values cannot be compared, so the bars decide
alone and the reason says so.
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


def decide(new: Candidate, champions: list[Candidate], tolerance: float) -> Decision:
    """The promote-if-better rule (see the module's docstring); ``champions`` are every version
    that has been champion (the current one included), in any order."""
    if new.unmet_bars:
        return Decision(False, "quality bars not met: " + ", ".join(new.unmet_bars))
    if new.chain_ndcg != new.chain_ndcg:
        return Decision(False, f"no chain {METRIC} in the evaluation")
    if not champions:
        return Decision(True, f"first version to meet every bar (chain {METRIC} {new.chain_ndcg:.4f})")
    comparable = [c for c in champions if c.evaluation_key == new.evaluation_key and c.chain_ndcg == c.chain_ndcg]
    if not comparable:
        return Decision(
            True,
            f"every bar met; no champion so far was evaluated on the same data and settings, so {METRIC} "
            f"is not compared (new {new.chain_ndcg:.4f})",
        )
    best = max(comparable, key=lambda c: c.chain_ndcg)
    comparison = (
        f"chain {METRIC} {new.chain_ndcg:.4f} vs the best champion's on the same evaluation, "
        f"v{best.version}'s {best.chain_ndcg:.4f} (tolerance {tolerance:g})"
    )
    if new.chain_ndcg >= best.chain_ndcg - tolerance:
        return Decision(True, f"every bar met and {comparison}")
    return Decision(False, f"worse than the champion: {comparison}")

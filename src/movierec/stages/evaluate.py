"""Stage ``evaluate``: every system's test lists scored, with intervals, comparisons and bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from movierec.evaluation.report import evaluate
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings


def run(settings: Settings, paths: ProjectPaths, recs: list[Path] | None = None) -> dict[str, Any]:
    """Score the list folders ``recs`` (default: baselines, retrieval and the chain)."""
    recs = recs or [paths.baseline_recs, paths.retrieval_recs, paths.ranking_recs]
    return evaluate(
        paths.split,
        paths.features,
        [Path(r) for r in recs],
        Recorder(paths.reports, paths.plots),
        settings.as_params()["evaluate"],
    )

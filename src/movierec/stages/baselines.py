"""Stage ``baselines``: every baseline tuned on validation, refitted, and its test lists written."""

from __future__ import annotations

from typing import Any

import movierec.baselines.similarity_cache as similarity_cache
from movierec.baselines.run import run_baselines
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings

REPORT = "baselines_validation"


def section(settings: Settings) -> dict[str, Any]:
    """The baselines' settings with the evaluation's cut-offs and relevance threshold."""
    params = settings.as_params()
    return {**params["baselines"], "ks": params["evaluate"]["ks"], "min_rating": params["evaluate"]["min_rating"]}


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Tune, refit, write ``recs/baselines``; records each baseline's choice in ``reports/``.

    Returns:
        ``{baseline: {"chosen", "validation"}}``.
    """
    with similarity_cache.kept_in(paths.similarity_cache):
        report = run_baselines(paths.split, paths.baseline_recs, section(settings))
    chosen = {
        name: {"chosen": r["chosen"], "validation": r["validation"]}
        for name, r in report.items()
        if isinstance(r, dict)
    }
    Recorder(paths.reports).metrics(REPORT, chosen)
    return chosen

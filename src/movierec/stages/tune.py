"""Stage ``tune``: both models' main hyperparameters chosen on validation (Optuna, bounded)."""

from __future__ import annotations

from typing import Any

import movierec.baselines.similarity_cache as similarity_cache
from movierec.models.tuning import tune
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, ranking_section


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Search, write ``data/tuned/settings.json``, ``reports/tuning.json`` and the trials' CSV."""
    params = settings.as_params()
    with similarity_cache.kept_in(paths.similarity_cache):
        return tune(
            periods(settings, paths),
            params["retrieval"],
            ranking_section(settings, paths, tuned=False),
            params["tune"],
            paths.tuned,
            Recorder(paths.reports, paths.plots),
        )

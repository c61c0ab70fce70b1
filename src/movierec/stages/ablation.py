"""Stage ``ablation``: what each part of the chain is worth, on the test users."""

from __future__ import annotations

from typing import Any

import movierec.baselines.similarity_cache as similarity_cache
from movierec.models.ablation import run_ablation
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, ranking_section, retrieval_section


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Score every row of ``retrieval.ablation`` and ``ranking.ablation`` (first seed)."""
    seed = settings.train.seeds[0]
    epochs = int(Recorder(paths.reports).read("retrieval")["per_seed"][str(seed)]["chosen_epochs"])
    with similarity_cache.kept_in(paths.similarity_cache):
        return run_ablation(
            periods(settings, paths),
            retrieval_section(settings, paths),
            ranking_section(settings, paths),
            seed,
            epochs,
            paths.models,
            Recorder(paths.reports, paths.plots),
        )

"""Stage ``train_retrieval``: the two-tower model per seed, its test lists, the served towers."""

from __future__ import annotations

from typing import Any

from movierec.models.export import save_towers
from movierec.models.train import train_retrieval
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, retrieval_section


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Select epochs on validation and refit per seed; export the first seed's served towers."""
    return train_retrieval(
        periods(settings, paths),
        retrieval_section(settings, paths),
        list(settings.train.seeds),
        paths.served_retrieval,
        paths.models,
        paths.retrieval_recs,
        Recorder(paths.reports, paths.plots),
        save_towers,
    )

"""Stage ``train_ranking``: the ranker per seed on a window retrieval did not see, the chain's
test lists, the served ranker."""

from __future__ import annotations

from typing import Any

from movierec.models.train import train_ranking
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, ranking_section


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Fit and score per seed; export the first seed's served ranker."""
    return train_ranking(
        periods(settings, paths),
        ranking_section(settings, paths),
        list(settings.train.seeds),
        paths.models,
        paths.served_ranking,
        paths.ranking_recs,
        Recorder(paths.reports, paths.plots),
    )

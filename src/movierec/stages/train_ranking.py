"""Stage ``train_ranking``: the ranker per seed on a window retrieval did not see, the chain's
test lists, the served ranker.

With ``TF_CONFIG`` naming several workers, every worker runs this stage and trains each ranker
together under ``MultiWorkerMirroredStrategy``; only the chief keeps the outputs (see
:mod:`movierec.stages.workers`; ``movierec train ranking --workers N`` starts the workers).
"""

from __future__ import annotations

from typing import Any

import movierec.baselines.similarity_cache as similarity_cache
from movierec.models.train import train_ranking
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, ranking_section
from movierec.stages.workers import worker_layout

OUTPUTS = ("checkpoints", "ranking_recs", "reports", "plots")
"""The layout fields this stage writes under (``models`` is its input: the retrieval models)."""


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Fit and score per seed; export the first seed's served ranker."""
    with similarity_cache.kept_in(paths.similarity_cache), worker_layout(paths, OUTPUTS) as (strategy, out):
        return train_ranking(
            periods(settings, paths),
            ranking_section(settings, paths),
            list(settings.train.seeds),
            paths.models,
            out.served_ranking,
            out.ranking_recs,
            Recorder(out.reports, out.plots),
            strategy=strategy,
        )

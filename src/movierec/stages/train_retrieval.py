"""Stage ``train_retrieval``: the two-tower model per seed, its test lists, the served towers.

With ``TF_CONFIG`` naming several workers, every worker runs this stage and trains each model
together under ``MultiWorkerMirroredStrategy``; only the chief keeps the outputs (see
:mod:`movierec.stages.workers`; ``movierec train retrieval --workers N`` starts the workers).
"""

from __future__ import annotations

from typing import Any

import movierec.baselines.similarity_cache as similarity_cache
from movierec.models.export import save_towers
from movierec.models.train import train_retrieval
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.stages.inputs import periods, retrieval_section
from movierec.stages.workers import worker_layout

OUTPUTS = ("checkpoints", "models", "retrieval_recs", "reports", "plots")
"""The layout fields this stage writes under (a non-chief worker writes them to scratch)."""


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Select epochs on validation and refit per seed; export the first seed's served towers."""
    with similarity_cache.kept_in(paths.similarity_cache), worker_layout(paths, OUTPUTS) as (strategy, out):
        return train_retrieval(
            periods(settings, paths),
            retrieval_section(settings, paths),
            list(settings.train.seeds),
            out.served_retrieval,
            out.models,
            out.retrieval_recs,
            Recorder(out.reports, out.plots),
            save_towers,
            strategy=strategy,
        )

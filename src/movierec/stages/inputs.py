"""What the model stages share: the loaded periods and each model's settings as trained.

The retrieval and ranking settings a training stage uses are ``params.yaml``'s section
with the tune stage's choice laid over it (``data/tuned/settings.json``); the ranker
also takes the EASE features' ``(l2, tau)`` and the biases' regularisation that the
baselines stage chose on validation.
"""

from __future__ import annotations

from typing import Any

from movierec.models.context import Periods, load_periods
from movierec.models.train import ranking_settings
from movierec.models.tuning import with_tuned
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def periods(settings: Settings, paths: ProjectPaths) -> Periods:
    """The split parts and the catalogues as known at each cut."""
    params = settings.as_params()
    widths = {k: int(v) for k, v in params["retrieval"]["widths"].items()}
    return load_periods(
        paths.prepared, paths.split, paths.features, widths, params["features"], settings.train.valid_users
    )


def retrieval_section(settings: Settings, paths: ProjectPaths, tuned: bool = True) -> dict[str, Any]:
    """The ``retrieval`` settings (with ``final_fit_all``), the tune stage's choice laid over them."""
    params = settings.as_params()
    section = {**params["retrieval"], "final_fit_all": params["train"]["final_fit_all"]}
    return with_tuned(section, paths.tuned, "retrieval") if tuned else section


def ranking_section(settings: Settings, paths: ProjectPaths, tuned: bool = True) -> dict[str, Any]:
    """The ``ranking`` settings with the baselines' EASE and biases choices, the tune stage's
    choice laid over them."""
    section = ranking_settings(settings.as_params(), paths.baseline_recs)
    return with_tuned(section, paths.tuned, "ranking") if tuned else section

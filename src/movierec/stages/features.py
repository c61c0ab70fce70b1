"""Stage ``features``: user, item and history features as of each cut (validation, test)."""

from __future__ import annotations

from typing import Any

from movierec.features import build_features
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Write ``features/{valid,test}/...``; returns per period the users, items and histories."""
    return build_features(paths.prepared, paths.split, paths.features, settings.as_params()["features"])

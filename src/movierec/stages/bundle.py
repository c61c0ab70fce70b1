"""Stage ``bundle``: check every exported part and write the served bundle's manifest."""

from __future__ import annotations

from typing import Any

from movierec.models.bundle import write_manifest
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Write ``checkpoints/manifest.json``; returns the manifest."""
    return write_manifest(paths.checkpoints, paths.prepared, settings.as_params(), paths.reports)

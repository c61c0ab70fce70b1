"""Stage ``bundle``: check every exported part and write the served bundle's manifest."""

from __future__ import annotations

from typing import Any

from movierec.models.bundle import write_manifest
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Write ``checkpoints/manifest.json``; returns the manifest.

    The manifest records every setting the bundle was built with; the ``registry`` section
    decides what happens to the bundle after it is built, so it is left out (a change to it
    does not make a new bundle version)."""
    params = {k: v for k, v in settings.as_params().items() if k != "registry"}
    return write_manifest(paths.checkpoints, paths.prepared, params, paths.reports)

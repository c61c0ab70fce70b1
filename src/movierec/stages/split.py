"""Stage ``split``: train / validation / test by the protocol of ``split.method``."""

from __future__ import annotations

from typing import Any

from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.split import method_params, split

REPORT = "split"


def run(settings: Settings, paths: ProjectPaths, method: str | None = None) -> dict[str, Any]:
    """Split ``prepared/interactions.parquet``; records ``reports/split.json`` and returns it."""
    section = settings.as_params()["split"]
    report = split(paths.prepared, paths.split, method_params(section, method))
    Recorder(paths.reports).metrics(REPORT, report)
    return report

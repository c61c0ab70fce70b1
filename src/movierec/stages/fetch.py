"""Stage ``fetch``: the configured dataset into ``data/raw/<name>/`` (checksum-verified)."""

from __future__ import annotations

from typing import Any

from movierec.data.fetch import fetch
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def run(settings: Settings, paths: ProjectPaths, source: str | None = None) -> dict[str, Any]:
    """Fetch ``source`` (default: ``data.source``); returns ``{"source", "raw_dir"}``."""
    source = source or settings.data.source
    return {"source": source, "raw_dir": fetch(source, raw_root=paths.raw)}

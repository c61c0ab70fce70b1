"""Stage ``prepare``: raw GroupLens files (any published format) into canonical Parquet tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from movierec.data.fetch import resolve_source
from movierec.data.prepare import prepare
from movierec.paths import ProjectPaths
from movierec.settings import Settings


def run(
    settings: Settings,
    paths: ProjectPaths,
    source: str | None = None,
    raw_dir: Path | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """Parse and validate ``raw_dir`` (default: the fetched ``data.source``) into ``paths.prepared``.

    Args:
        source: the dataset fetched (default: ``data.source``).
        raw_dir: a raw folder to read instead of ``data/raw/<name>``.
        fmt: skip format detection (``ml-100k``, ``ml-1m``, ``csv``, ``recbole``).

    Returns:
        The summary :func:`movierec.data.prepare.prepare` writes.
    """
    if raw_dir is None:
        raw_dir = paths.raw / resolve_source(source or settings.data.source).name
    return prepare(Path(raw_dir), paths.prepared, fmt=fmt)

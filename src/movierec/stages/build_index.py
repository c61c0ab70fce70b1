"""Stage ``build_index``: brute-force, ScaNN and FAISS indexes over the served candidate tower."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from movierec.models.index import build_indexes
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings

REPORT = "index"


def run(
    settings: Settings, paths: ProjectPaths, retrieval_dir: Path | None = None, items: Path | None = None
) -> dict[str, Any]:
    """(Re)build the indexes in ``retrieval_dir`` (default: the served towers) and record them.

    Args:
        retrieval_dir: a folder with exported towers (default: ``checkpoints/retrieval``).
        items: a catalogue table (the features' ``items.parquet`` layout) to index instead of
            the towers' own catalogue.
    """
    retrieval_dir = Path(retrieval_dir) if retrieval_dir else paths.served_retrieval
    table = pq.read_table(items) if items else None
    report = build_indexes(retrieval_dir, retrieval_dir, settings.as_params()["index"], items=table)
    Recorder(paths.reports).metrics(REPORT, report)
    return report

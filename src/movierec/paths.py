"""Filesystem locations of the pipeline's artifacts, relative to the project root.

Nothing here touches the disk at import time: these are plain ``pathlib`` constants.
The project root is the current working directory, which is where ``dvc repro``,
Airflow tasks and the Makefile run the CLI from.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(".")
PARAMS_FILE = ROOT / "params.yaml"

DATA_DIR = ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
PREPARED_DIR = DATA_DIR / "prepared"
SPLIT_DIR = DATA_DIR / "split"
FEATURES_DIR = DATA_DIR / "features"
SYNTH_DIR = DATA_DIR / "synth"
TUNED_DIR = DATA_DIR / "tuned"
RECS_DIR = DATA_DIR / "recs"
BASELINE_RECS_DIR = RECS_DIR / "baselines"

CHECKPOINTS_DIR = ROOT / "checkpoints"
REPORTS_DIR = ROOT / "reports"
PLOTS_DIR = REPORTS_DIR / "plots"

# Where downloads are cached between runs, outside the project so a fresh clone reuses them.
DOWNLOAD_CACHE = Path.home() / ".cache" / "movierec" / "downloads"

"""Filesystem locations of the pipeline's artifacts, relative to the project root.

Nothing here touches the disk at import time: these are plain ``pathlib`` constants.
The project root is the current working directory, which is where ``dvc repro``,
Airflow tasks and the Makefile run the CLI from.
"""

from __future__ import annotations

from dataclasses import dataclass
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
MODELS_DIR = DATA_DIR / "models"
GLOBAL_DIR = DATA_DIR / "global"
# Item-kNN similarities shared between stages, found by their inputs' digest (not a DVC
# output: deleting it costs only time; see movierec.baselines.similarity_cache).
SIMILARITY_CACHE = DATA_DIR / "cache" / "item_knn"

CHECKPOINTS_DIR = ROOT / "checkpoints"
REPORTS_DIR = ROOT / "reports"
PLOTS_DIR = REPORTS_DIR / "plots"
TIMINGS_DIR = REPORTS_DIR / "timings"  # each stage's last wall time (not in git, not a DVC output)
MLFLOW_DIR = ROOT / "mlflow"  # the embedded MLflow store: mlflow.db and artifacts/ (not in git)

# Where downloads are cached between runs, outside the project so a fresh clone reuses them.
DOWNLOAD_CACHE = Path.home() / ".cache" / "movierec" / "downloads"


@dataclass(frozen=True)
class ProjectPaths:
    """Every location a stage reads or writes, under one project root.

    The defaults are the constants above (relative to the working directory, where
    ``dvc repro``, the CLI and the Airflow tasks run); ``ProjectPaths.under(root)`` puts
    the same layout under another folder (a test's temporary project, a notebook's
    scratch copy). Stages take one of these and never spell a path of their own.
    """

    root: Path = ROOT
    raw: Path = RAW_DIR
    prepared: Path = PREPARED_DIR
    split: Path = SPLIT_DIR
    features: Path = FEATURES_DIR
    tuned: Path = TUNED_DIR
    baseline_recs: Path = BASELINE_RECS_DIR
    retrieval_recs: Path = RECS_DIR / "retrieval"
    ranking_recs: Path = RECS_DIR / "ranking"
    models: Path = MODELS_DIR
    global_work: Path = GLOBAL_DIR
    checkpoints: Path = CHECKPOINTS_DIR
    reports: Path = REPORTS_DIR
    plots: Path = PLOTS_DIR
    timings: Path = TIMINGS_DIR
    mlflow: Path = MLFLOW_DIR
    similarity_cache: Path = SIMILARITY_CACHE

    @classmethod
    def under(cls, root: str | Path) -> ProjectPaths:
        """The default layout, rooted at ``root`` instead of the working directory."""
        root = Path(root)
        defaults = cls()
        return cls(**{name: root / getattr(defaults, name) for name in cls.__dataclass_fields__})

    @property
    def served_retrieval(self) -> Path:
        """The served towers and indexes (``checkpoints/retrieval``)."""
        from movierec.models.layout import RETRIEVAL

        return self.checkpoints / RETRIEVAL

    @property
    def served_ranking(self) -> Path:
        """The served ranker (``checkpoints/ranking``)."""
        from movierec.models.layout import RANKING

        return self.checkpoints / RANKING

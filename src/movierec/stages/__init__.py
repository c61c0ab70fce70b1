"""The stage layer: one module per pipeline stage, each with one ``run(settings, paths)``.

``dvc.yaml`` (through the CLI), the Airflow DAG, the notebooks and the tests call these
functions and nothing else, so every caller runs the same code with the same checked
settings (:class:`movierec.settings.Settings`) and the same layout
(:class:`movierec.paths.ProjectPaths`). A stage returns what it recorded, as a mapping;
printing is the caller's business.

=================  ====================================================================
stage              what it does
=================  ====================================================================
fetch              bring the dataset into ``data/raw/<name>/``
prepare            parse and validate the raw files into canonical Parquet tables
split              train / validation / test by the configured protocol
features           user, item and history features as of each cut
baselines          most-popular, item-kNN, EASE (plain and recency-weighted), biases
tune               both models' hyperparameters on validation (Optuna)
train_retrieval    the two-tower model per seed, the served towers
build_index        brute-force, ScaNN and FAISS indexes with settings tuned per catalogue
train_ranking      the ranker per seed, the chain's test lists, the served ranker
ablation           what each part is worth
report_global      the production-like second report on the global temporal split
evaluate           every system scored on the test users, with intervals and bars
bundle             the served bundle's manifest
register           an MLflow run of the pipeline run; the bundle as a model version,
                   promoted to ``champion`` if better
push_metrics       the training metrics to a Prometheus Pushgateway (not a DVC stage:
                   it writes nothing; the Airflow DAG and ``movierec push-metrics`` run it)
=================  ====================================================================
"""

STAGES = (
    "fetch",
    "prepare",
    "split",
    "features",
    "baselines",
    "tune",
    "train_retrieval",
    "build_index",
    "train_ranking",
    "ablation",
    "report_global",
    "evaluate",
    "bundle",
    "register",
)
"""The stages ``dvc.yaml`` runs, in order."""

OUTWARD = ("push_metrics",)
"""Stages that only send what was recorded elsewhere (no outputs, so not DVC stages)."""

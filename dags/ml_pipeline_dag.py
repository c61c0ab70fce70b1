"""
# ml_pipeline_dag: train, evaluate, register and publish movierec

Runs the whole movierec pipeline on the project in `MOVIEREC_PROJECT_DIR` (default: the
folder above this DAG file), calling the same stage functions as `dvc repro`, and records
every stage in `dvc.lock`, so after a run `dvc status` is clean.

| task | what it does |
|---|---|
| `data_retrieval` | fetches `data.source` into `data/raw/` (checksum-verified; a local folder is copied) |
| `preprocessing` | parses and validates the raw files into Parquet, then splits train / validation / test |
| `feature_engineering` | user, item and history features as of each cut; the baselines (most-popular, item-kNN, EASE, biases), tuned on validation |
| `train_retrieval` | tunes both models on validation (Optuna), trains the two-tower model per seed, builds the brute-force, ScaNN and FAISS indexes |
| `train_ranking` | trains the ranker per seed and scores the chain |
| `evaluate_models` | the ablation, the global-split report, and the evaluation of every system with intervals and quality bars |
| `push_metrics` | pushes retrieval accuracy, ranking NDCG, stage durations to the Pushgateway in `MOVIEREC_PUSHGATEWAY` (skipped when unset or unreachable, so an outage never holds back a release) |
| `register_models` | writes the bundle's manifest, logs the run to MLflow, registers the bundle as a version (alias `challenger`; a bundle registered before is not registered again) and promotes it to `champion` if it is better |
| `dvc_push` | `dvc push` of every output to the default DVC remote (only when the form asks) |

**Trigger form.** Empty fields keep `params.yaml`'s values; a filled one is written into
`params.yaml` (comments kept), so DVC, MLflow and the outputs agree on what was used. A given
number of epochs is also the only choice left to the tune stage's search for that model.

**Training workers.** With `training_workers` above 1, `train_retrieval` and `train_ranking`
start that many worker processes on the task's machine, which train each model together
(`tf.distribute.MultiWorkerMirroredStrategy`); the chief writes the same outputs one process
would. See `docs/distributed-training.md` for several hosts.

**Schedule.** Weekly (Mondays 03:00 UTC), no catch-up, one run at a time. Each task retries
twice, a minute apart; a rerun recomputes the same outputs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, get_current_context, task

PROJECT = Path(os.environ.get("MOVIEREC_PROJECT_DIR") or Path(__file__).resolve().parents[1])


def _run(name: str) -> dict[str, Any]:
    """Run DAG task ``name`` through the stage layer (imported here, not at parse time)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from movierec.orchestration.tasks import TaskSkipped, run_task

    params = dict(get_current_context()["params"])
    try:
        return run_task(name, params, PROJECT)
    except TaskSkipped as exc:
        raise AirflowSkipException(str(exc)) from None


@dag(
    dag_id="ml_pipeline_dag",
    description="movierec: data, features, two-tower retrieval, ranking, evaluation, MLflow registry",
    doc_md=__doc__,
    # weekly, Mondays 03:00 UTC. No start date and no grace period: enabling the DAG waits for the
    # next Monday instead of starting a run for the last one (Airflow would, with a start date)
    schedule=CronTriggerTimetable("0 3 * * 1", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    tags=["movierec"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=4),
    },
    params={
        "data_source": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Data source",
            description="ml-100k, grouplens/<name> (ml-1m, ml-latest-small, ml-25m, ml-32m) or a local folder; "
            "empty: data.source in params.yaml",
        ),
        "retrieval_epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=200,
            title="Retrieval epochs",
            description="the most epochs of the two-tower model (the best on validation is kept); empty: tuned",
        ),
        "ranking_epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=200,
            title="Ranking epochs",
            description="epochs of the ranker; empty: tuned",
        ),
        "training_workers": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=16,
            title="Training workers",
            description="worker processes that train each model together on the task's machine "
            "(MultiWorkerMirroredStrategy over loopback ports; params.yaml's batch sizes stay the global batch); "
            "empty: 1",
        ),
        "promotion_tolerance": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Promotion tolerance",
            description="how far below the champion's chain NDCG@10 a new version may be and still be promoted; "
            "empty: registry.tolerance in params.yaml",
        ),
        "promote": Param(
            None,
            type=["null", "boolean"],
            title="Promote if better",
            description="let the new version become champion when it passes the rule (false: it stays challenger); "
            "empty: registry.promote in params.yaml",
        ),
        "dvc_push": Param(
            False,
            type="boolean",
            title="Push with DVC",
            description="push data and checkpoints to the default DVC remote at the end",
        ),
    },
)
def ml_pipeline_dag() -> None:
    """The nine tasks, in order (see the DAG's docs)."""

    @task
    def data_retrieval() -> dict[str, Any]:
        return _run("data_retrieval")

    @task
    def preprocessing() -> dict[str, Any]:
        return _run("preprocessing")

    @task
    def feature_engineering() -> dict[str, Any]:
        return _run("feature_engineering")

    @task
    def train_retrieval() -> dict[str, Any]:
        return _run("train_retrieval")

    @task
    def train_ranking() -> dict[str, Any]:
        return _run("train_ranking")

    @task
    def evaluate_models() -> dict[str, Any]:
        return _run("evaluate_models")

    @task
    def push_metrics() -> dict[str, Any]:
        return _run("push_metrics")

    @task(trigger_rule="none_failed")  # runs when push_metrics was skipped (no Pushgateway)
    def register_models() -> dict[str, Any]:
        return _run("register_models")

    @task(trigger_rule="none_failed")
    def dvc_push() -> dict[str, Any]:
        return _run("dvc_push")

    chain(
        data_retrieval(),
        preprocessing(),
        feature_engineering(),
        train_retrieval(),
        train_ranking(),
        evaluate_models(),
        push_metrics(),
        register_models(),
        dvc_push(),
    )


ml_pipeline_dag()

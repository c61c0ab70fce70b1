"""The nine tasks of ``ml_pipeline_dag``: which stages each runs, and how.

=====================  ====================================================================
task                   stages (``movierec.stages``)
=====================  ====================================================================
data_retrieval         fetch
preprocessing          prepare, split
feature_engineering    features, baselines (EASE and biases also feed the ranker)
train_retrieval        tune, train_retrieval, build_index
train_ranking          train_ranking
evaluate_models        ablation, report_global, evaluate
push_metrics           push_metrics (skipped when no Pushgateway is configured)
register_models        bundle, register (then the model version is pushed, if configured)
dvc_push               ``dvc push`` of every output (when asked for and a remote exists)
=====================  ====================================================================

A task is idempotent: it runs its stages from their inputs, each in a fresh process as
``dvc repro`` does (each stage writes its outputs atomically, so a failure leaves the previous
ones), then ``dvc commit`` records them in ``dvc.lock``; a rerun recomputes the same outputs,
byte for byte, and records them again.

With the form's ``training_workers`` above 1, ``train_retrieval`` and ``train_ranking`` run
as that many worker processes on the task's machine (:mod:`movierec.stages.distributed`);
the chief writes the outputs, which equal one process's up to float rounding.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from movierec.errors import MovierecError, ParamsError
from movierec.orchestration import overrides
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import load_settings
from movierec.stages.distributed import TRAINING_STAGES

TASKS: dict[str, tuple[str, ...]] = {
    "data_retrieval": ("fetch",),
    "preprocessing": ("prepare", "split"),
    "feature_engineering": ("features", "baselines"),
    "train_retrieval": ("tune", "train_retrieval", "build_index"),
    "train_ranking": ("train_ranking",),
    "evaluate_models": ("ablation", "report_global", "evaluate"),
    "push_metrics": ("push_metrics",),
    "register_models": ("bundle", "register"),
    "dvc_push": (),
}
PROJECT_ENV = "MOVIEREC_PROJECT_DIR"


class TaskSkipped(MovierecError):
    """The task has nothing to do in this run (the DAG marks it skipped, not failed)."""


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    result = subprocess.run([binary, *args], cwd=project, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise MovierecError(f"dvc {' '.join(args)} failed in {project}:\n{(result.stdout + result.stderr)[-2000:]}")
    return result


def record_in_lock(project: Path, stages: list[str]) -> bool:
    """``dvc commit`` the stages (their deps, params and outputs into ``dvc.lock``); False when
    the project is not a DVC repository."""
    if not stages or not (project / ".dvc").is_dir():
        return False
    _dvc(project, "commit", "--force", "--quiet", *stages)
    return True


def run_stage(stage: str, project: Path) -> float:
    """Run one stage in a fresh Python process (see :mod:`movierec.orchestration.stage_process`),
    its log streamed into the task's log as it runs; returns its wall time.

    Raises:
        MovierecError: the stage failed (with its error message).
    """
    start = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=200)
    process = subprocess.Popen(
        [sys.executable, "-m", "movierec.orchestration.stage_process", stage, str(project)],
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(line)
            tail.append(line)
        process.wait()
    finally:
        if process.poll() is None:  # the task was stopped (timeout, kill): stop the stage too
            process.kill()
            process.wait()
    if process.returncode != 0:
        errors = [line.strip() for line in tail if line.startswith("error: ")]
        reason = errors[-1].removeprefix("error: ") if errors else "".join(tail)[-2000:]
        raise MovierecError(f"stage {stage} failed (exit {process.returncode}): {reason}")
    return time.perf_counter() - start


def run_on_workers(stage: str, project: Path, workers: int) -> float:
    """Run a training stage as ``workers`` processes on this machine (the DAG form's
    ``training_workers``), their logs streamed into the task's log; returns its wall time.

    Raises:
        MovierecError: a worker failed (named, with its last lines); the others were stopped.
    """
    from movierec.stages import distributed

    paths = ProjectPaths.under(project)
    result = distributed.run(load_settings(project / "params.yaml"), paths, stage, workers=workers)
    Recorder(paths.reports, paths.plots).timing(stage, result["seconds"])
    return float(result["seconds"])


def run_task(name: str, form: dict[str, Any], project: Path) -> dict[str, Any]:
    """Run task ``name`` of the DAG in ``project`` with the trigger form ``form``.

    Returns a small summary (for XCom): the stages run, their wall times, the params the form
    changed, and for ``register_models`` the registration.

    Raises:
        TaskSkipped: nothing to do (no Pushgateway, or ``dvc_push`` not asked for).
        MovierecError: a stage failed with a user-facing error (bad data, bad params, ...).
    """
    if name not in TASKS:
        raise ParamsError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    project = Path(project).resolve()
    if not (project / "params.yaml").exists():
        raise ParamsError(f"{project} has no params.yaml: set {PROJECT_ENV} to a movierec project")
    os.chdir(project)  # relative data sources and paths resolve as under `dvc repro`
    os.environ["MOVIEREC_LAUNCHED_BY"] = "airflow"
    changed = overrides.apply(project / "params.yaml", form)
    settings = load_settings(project / "params.yaml")
    paths = ProjectPaths.under(project)
    summary: dict[str, Any] = {"task": name, "project": str(project), "params_changed": changed, "seconds": {}}

    if name == "dvc_push":
        if not form.get("dvc_push"):
            raise TaskSkipped("dvc_push is off in this run's params")
        if not _dvc(project, "remote", "default").stdout.strip():
            raise ParamsError("no default DVC remote: add one with `dvc remote add -d NAME URL`")
        summary["pushed"] = _dvc(project, "push").stdout.strip().splitlines()[-1:]
        return summary

    from movierec.tracking.pushgateway import gateway_address, push

    if name == "push_metrics":  # best effort: a Pushgateway outage must not hold back a release
        if gateway_address() is None:
            raise TaskSkipped("no Pushgateway configured (set MOVIEREC_PUSHGATEWAY=host:9091 for the workers)")
        try:
            pushed = push(settings, paths)
        except MovierecError as exc:
            raise TaskSkipped(f"training metrics not pushed: {exc}") from None
        summary["pushed"] = {k: pushed[k] for k in ("gateway", "retrieval_accuracy", "ranking_ndcg")}
        return summary
    summary["dvc_lock_updated"] = False
    workers = int(form.get("training_workers") or 1)
    for stage in TASKS[name]:
        if workers > 1 and stage in TRAINING_STAGES:
            summary["seconds"][stage] = round(run_on_workers(stage, project, workers), 2)
            summary["workers"] = workers
        else:
            summary["seconds"][stage] = round(run_stage(stage, project), 2)
        # each stage in the lock before the next runs, as under `dvc repro` (register's lineage
        # digest covers bundle's fresh entry)
        summary["dvc_lock_updated"] = record_in_lock(project, [stage]) or summary["dvc_lock_updated"]
    if name == "register_models":
        registered = Recorder(paths.reports, paths.plots).read("registry")
        summary["registered"] = {k: registered[k] for k in ("version", "promoted", "reason", "champion", "run_id")}
        if gateway_address() is not None:
            try:
                push(settings, paths)  # the new model version next to the metrics push_metrics sent
            except MovierecError as exc:
                print(f"warning: the model version was not pushed: {exc}", file=sys.stderr)
    return summary

"""One pipeline run as one MLflow run: settings, per-epoch curves, the evaluation, lineage, the bundle.

The run is written after the pipeline's stages, from what they recorded (the
:class:`movierec.recording.Recorder` replays every report, table and figure into it), so a
run from ``dvc repro``, a notebook or the Airflow DAG holds the same things:

- params: every setting of ``params.yaml`` (dotted keys) and the tune stage's choice (``tuned.*``);
- metrics: every number of every report (``metrics.*`` is the evaluation), the epoch curves
  of both models and the tuning trials as metric histories, each stage's wall time
  (``duration_seconds.*``);
- artifacts: the reports, the plots, the evaluation table as text and the bundle (``bundle/``);
- tags: the data fingerprint, the bundle version, the git commit and the DVC lock digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from movierec.io import read_json
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.tracking.mlflow_backend import MlflowBackend, metric_key

if TYPE_CHECKING:
    from mlflow import MlflowClient

BUNDLE_ARTIFACTS = "bundle"
_PARAMS_PER_CALL = 100
_PARAM_LENGTH = 6000
SKIPPED_REPORTS = ("registry",)  # the previous registration: not this run's record


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as ``{"retrieval.embedding_dim": "64", ...}`` (lists kept as JSON)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, str] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out
    text = json.dumps(tree) if isinstance(tree, (list, dict)) else str(tree)
    return {prefix.rstrip("."): text[:_PARAM_LENGTH]}


def git_commit(root: Path) -> str:
    """The project's git commit (``+dirty`` when tracked files other than the pipeline's own
    outputs, ``dvc.lock`` and ``reports/``, changed), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # the pipeline's own outputs (the lock, the reports) change during every run: not code
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!dvc.lock",
                ":!reports",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "") if head else "unknown"


def dvc_lock_digest(root: Path, leave_out: tuple[str, ...] = ("register",)) -> str:
    """SHA-256 (16 hex digits) of ``dvc.lock``'s stage entries, the stages in ``leave_out``
    excepted (the register stage's own entry is written after it runs); ``none`` without a lock."""
    path = Path(root) / "dvc.lock"
    if not path.exists():
        return "none"
    lock = yaml.safe_load(path.read_text()) or {}
    stages = {k: v for k, v in (lock.get("stages") or {}).items() if k not in leave_out}
    return hashlib.sha256(json.dumps(stages, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_label(source: str) -> str:
    """A short name of ``data.source`` for labels (a local folder's name, ``grouplens/x`` -> ``x``)."""
    return Path(source.rstrip("/")).name or source


def lineage(settings: Settings, paths: ProjectPaths, manifest: dict[str, Any]) -> dict[str, str]:
    """The tags that say what a run (and its model version) was built from."""
    return {
        "dataset": dataset_label(settings.data.source),
        "data_source": settings.data.source,
        "data_fingerprint": str(manifest.get("data_fingerprint", "")),
        "bundle_version": str(manifest.get("version", "")),
        "git_commit": git_commit(paths.root),
        "dvc_lock_digest": dvc_lock_digest(paths.root),
        "launched_by": os.environ.get("MOVIEREC_LAUNCHED_BY", "cli"),
    }


def log_pipeline_run(
    client: MlflowClient, experiment_id: str, settings: Settings, paths: ProjectPaths, tags: dict[str, str]
) -> str:
    """Write the run with the lineage ``tags`` (from :func:`lineage`); returns its id. A failure marks it FAILED."""
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=f"{tags['dataset']}-{tags['bundle_version']}", tags=tags)
    run_id = run.info.run_id
    try:
        params = flatten(settings.as_params())
        tuned = paths.tuned / "settings.json"
        if tuned.exists():
            params |= flatten(read_json(tuned), "tuned.")
        entries = [Param(metric_key(k), v) for k, v in sorted(params.items())]
        for start in range(0, len(entries), _PARAMS_PER_CALL):
            client.log_batch(run_id, params=entries[start : start + _PARAMS_PER_CALL])
        backend = MlflowBackend(client, run_id)
        recorder = Recorder(paths.reports, paths.plots)
        recorder.replay(backend, skip=SKIPPED_REPORTS)
        backend.log_metrics("duration_seconds", recorder.timings())
        metrics_path = paths.reports / "metrics.json"
        if metrics_path.exists():
            from movierec.evaluation.report import format_table

            client.log_text(run_id, format_table(read_json(metrics_path)), "evaluation.txt")
        client.log_artifacts(run_id, str(paths.checkpoints), BUNDLE_ARTIFACTS)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def bundle_source(client: MlflowClient, run_id: str) -> str:
    """The artifact address of a run's bundle (what a model version points at)."""
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{BUNDLE_ARTIFACTS}"

"""Training metrics for Prometheus, pushed to a Pushgateway after a pipeline run.

Pushed under ``job="movierec_training"`` and grouped by ``dataset`` (each push replaces that
group's previous values), so Prometheus (``honor_labels: true``) keeps one series per dataset:

=========================================  ===================================================
metric                                     value
=========================================  ===================================================
``retrieval_accuracy``                     the first stage's Recall@100 on the test users
``ranking_ndcg``                           the chain's NDCG@10 on the test users
``training_duration_seconds{stage}``       each stage's last wall time
``model_version{alias}``                   the registered version (``registered``) and the
                                           champion's (``champion``)
``training_quality_bars_met``              1 when every quality bar is met, else 0
``training_last_success_timestamp_seconds`` when this push happened (for a staleness alert)
=========================================  ===================================================
"""

from __future__ import annotations

import os
import time
from typing import Any

from movierec.errors import DataError, ParamsError
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import Settings
from movierec.tracking.run_log import dataset_label

ENV = "MOVIEREC_PUSHGATEWAY"
JOB = "movierec_training"


def gateway_address(given: str | None = None) -> str | None:
    """The Pushgateway to push to: ``given``, else ``MOVIEREC_PUSHGATEWAY``, else None."""
    return (given or os.environ.get(ENV, "")).strip() or None


def training_values(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """What a push holds, read from the recorded reports.

    Raises:
        DataError: there is no evaluation yet (``reports/metrics.json``).
    """
    recorder = Recorder(paths.reports, paths.plots)
    metrics = recorder.read("metrics")
    systems = metrics.get("systems", {})
    registry = recorder.read("registry") if (paths.reports / "registry.json").exists() else {}

    def value(system: str, name: str) -> float | None:
        found = systems.get(system, {}).get("all", {}).get(name)
        return float(found) if found is not None else None

    bars = metrics.get("bars", {})
    return {
        "dataset": dataset_label(settings.data.source),
        "retrieval_accuracy": value("retrieval", "recall@100"),
        "ranking_ndcg": value("chain", "ndcg@10"),
        "durations": recorder.timings(),
        "registered_version": registry.get("version"),
        "champion_version": registry.get("champion"),
        "bars_met": bool(bars) and all(bar.get("met") for bar in bars.values()),
    }


def push(settings: Settings, paths: ProjectPaths, gateway: str | None = None) -> dict[str, Any]:
    """Push the training metrics (see the module's docstring); returns what was pushed.

    Raises:
        ParamsError: no Pushgateway address is configured.
        DataError: the Pushgateway could not be reached, or nothing was evaluated yet.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    address = gateway_address(gateway)
    if address is None:
        raise ParamsError(f"no Pushgateway address: set {ENV}=host:9091 (or pass --gateway)")
    values = training_values(settings, paths)
    registry = CollectorRegistry()
    for name, doc in (
        ("retrieval_accuracy", "Retrieval Recall@100 on the test users, last training run"),
        ("ranking_ndcg", "Chain (retrieval then ranking) NDCG@10 on the test users, last training run"),
    ):
        if values[name] is not None:
            Gauge(name, doc, registry=registry).set(values[name])
    duration = Gauge(
        "training_duration_seconds", "Wall time of each pipeline stage, last run", ["stage"], registry=registry
    )
    for stage, seconds in values["durations"].items():
        duration.labels(stage=stage).set(seconds)
    version = Gauge("model_version", "Registered model version by alias", ["alias"], registry=registry)
    for alias, key in (("registered", "registered_version"), ("champion", "champion_version")):
        if values[key] is not None:
            version.labels(alias=alias).set(float(values[key]))
    Gauge("training_quality_bars_met", "1 when every quality bar was met", registry=registry).set(
        1.0 if values["bars_met"] else 0.0
    )
    Gauge(
        "training_last_success_timestamp_seconds", "Unix time of the last successful training push", registry=registry
    ).set(time.time())
    try:
        push_to_gateway(address, job=JOB, registry=registry, grouping_key={"dataset": values["dataset"]}, timeout=30)
    except OSError as exc:
        raise DataError(f"could not push to the Pushgateway at {address}: {exc}") from exc
    return {"gateway": address, "job": JOB, **values}

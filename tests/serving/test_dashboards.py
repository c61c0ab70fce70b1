"""Every metric the Grafana dashboards query is one the project exports (offline).

The service's metrics are read from its registry, the training metrics from what
``movierec push-metrics`` builds; tests/serving/test_grafana_live.py checks the same names
against a live service and Pushgateway, and runs every panel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import movierec.serving.app  # noqa: F401  (imports every module that defines a service metric)
from movierec.grafana.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "summary": ("",)}


def _names(registry: CollectorRegistry) -> set[str]:
    return {f"{family.name}{suffix}" for family in registry.collect() for suffix in SUFFIXES.get(family.type, ("",))}


def _training_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    import prometheus_client

    from movierec.tracking import pushgateway

    pushed: list[CollectorRegistry] = []
    values = {
        "dataset": "d",
        "retrieval_accuracy": 0.5,
        "ranking_ndcg": 0.3,
        "durations": {"train_ranking": 1.0},
        "registered_version": 2,
        "champion_version": 1,
        "bars_met": True,
    }
    monkeypatch.setattr(pushgateway, "training_values", lambda settings, paths: values)
    monkeypatch.setattr(prometheus_client, "push_to_gateway", lambda *args, registry, **kwargs: pushed.append(registry))
    pushgateway.push(None, None, gateway="127.0.0.1:1")  # type: ignore[arg-type]
    return _names(pushed[0])


def _dashboard_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                for name in metric_names(target["expr"]):
                    used.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    return used


def test_dashboard_panels_use_exported_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    used = _dashboard_names()
    exported = _names(REGISTRY) | _training_names(monkeypatch)
    # in multiprocess mode the same process_* families come per worker (serving/process_metrics.py)
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= exported
    unknown = {name: panels for name, panels in used.items() if name not in exported}
    assert used and not unknown, unknown

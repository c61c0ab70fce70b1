"""The Grafana dashboard queries metrics the service really exports.

The alert rules' metric names are checked in tests/monitoring/test_alerts.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from movierec.serving import metrics

ROOT = Path(__file__).resolve().parents[2]
NAMES = {
    "recommendation_requests_total",
    "recommendation_latency_seconds_bucket",
    "model_load_time_seconds",
    "active_users_count",
    "fallback_total",
    "model_bundle_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}


def _metric_names(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b([a-z_]+(?:_total|_seconds(?:_bucket)?|_count|_info|_bytes))\b", expr)}


def test_dashboard_panels_use_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "grafana" / "movierec-api.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= _metric_names(target["expr"])
    assert used and used <= NAMES, used - NAMES
    exported = {
        metrics.REQUESTS._name + "_total",
        metrics.LATENCY._name + "_bucket",
        metrics.MODEL_LOAD._name,
        metrics.ACTIVE_USERS._name,
        metrics.FALLBACKS._name + "_total",
        metrics.BUNDLE._name,
    }
    assert used - {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= exported

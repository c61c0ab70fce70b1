"""Stage ``push_metrics``: the training metrics to a Prometheus Pushgateway (see
:mod:`movierec.tracking.pushgateway`)."""

from __future__ import annotations

from typing import Any

from movierec.paths import ProjectPaths
from movierec.settings import Settings
from movierec.tracking.pushgateway import push


def run(settings: Settings, paths: ProjectPaths, gateway: str | None = None) -> dict[str, Any]:
    """Push to ``gateway`` (default: ``MOVIEREC_PUSHGATEWAY``); returns what was pushed."""
    return push(settings, paths, gateway)

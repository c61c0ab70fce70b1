"""The three dashboards: the API, training, and recommendation quality.

Thresholds are drawn from the project's own measurements and limits: the alert rules
(chain p99 over 250 ms, a fallback surge over half the answers), the speed measurements
(two workers served about 2,000 chain requests/s on the 2-core reference machine), the
pipeline's timings (a full ``dvc repro`` takes 12 minutes there, a weekly schedule) and
the offline results (ML-100K's chain NDCG@10 is 0.30, most-popular's 0.12; the synthetic
dataset's chain 0.096). Where no value is good or bad (a version number), the panel has
only a base colour and its description says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from movierec.grafana.api_dashboard import api
from movierec.grafana.quality_dashboard import quality
from movierec.grafana.training_dashboard import training

# file name in grafana/dashboards/ -> the function that builds it
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "movierec-api.json": api,
    "movierec-training.json": training,
    "movierec-quality.json": quality,
}

"""What the dashboards share: the selectors of the API's and the training's series, and the
queries and thresholds more than one dashboard shows."""

from __future__ import annotations

from typing import Any

from movierec.grafana.panels import GREEN, RED, YELLOW, Query, query_variable, steps

API = 'job="$job"'  # the API's series, on the dashboard's job variable
TRAINING = 'job="movierec_training", dataset=~"$dataset"'  # what training pushed, per dataset


def job_variable() -> dict[str, Any]:
    """The API dashboards' variable: the Prometheus job that scrapes the API."""
    return query_variable(
        "job",
        "API job",
        "label_values(recommendation_requests_total, job)",
        "The Prometheus job that scrapes the API (prometheus/prometheus.yml: movierec-api).",
    )


def fallback_share() -> Query:
    """Share of retrieval and chain answers served by a fallback (0 rather than nothing without fallbacks)."""
    return Query(
        f"(sum(rate(fallback_total{{{API}}}[$__rate_interval])) or vector(0))"
        f' / sum(rate(recommendation_requests_total{{{API}, endpoint=~"retrieval|recommendations", status="200"}}'
        "[$__rate_interval]))",
        "fallback share",
    )


def offline_ndcg() -> Query:
    """The served bundle's offline chain NDCG@10."""
    return Query(f"max(model_offline_ndcg_at_10{{{API}}})", "NDCG@10")


def ndcg_steps() -> list[tuple[float | None, str]]:
    """NDCG@10 colours: red under 0.05, yellow under 0.1 (ML-100K's chain: 0.30, most-popular 0.12)."""
    return steps(RED, (0.05, YELLOW), (0.1, GREEN))

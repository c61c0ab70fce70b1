"""The recommendation quality dashboard: the business and model-health metrics of what is served."""

from __future__ import annotations

from typing import Any

from movierec.grafana.panels import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    Grid,
    Query,
    dashboard,
    stat,
    steps,
    timeseries,
)
from movierec.grafana.queries import API, fallback_share, job_variable, ndcg_steps


def quality() -> dict[str, Any]:
    """Business and model-health metrics of what the API serves."""
    grid = Grid()
    grid.add(
        timeseries(
            "Feedback events per second by type",
            "Feedback events stored (rating, view, click, watch). How many to expect depends on the "
            "client, so no alarm colour here; the next panel turns red when none arrive at all.",
            "cps",
            [Query(f"sum by (event) (rate(feedback_events_total{{{API}}}[$__rate_interval]))", "{{event}}")],
            steps(GREEN),
            width=16,
        ),
        stat(
            "Feedback events in the time range",
            "Feedback events stored over the dashboard's time range. Red at 0: the client's "
            "feedback integration is probably broken, and the interacted share below cannot move.",
            "short",
            [Query(f"sum(increase(feedback_events_total{{{API}}}[$__range]))", "events")],
            steps(RED, (1, GREEN)),
            decimals=0,
            width=8,
            height=8,
        ),
    )
    grid.add(
        timeseries(
            "Interacted share of recommended items",
            "Of the distinct (user, item) pairs the chain recommended in the quality window "
            "(quality_window_seconds, 1 hour by default), the share the user then sent feedback "
            "on. Red under 1 %, yellow under 5 %: users act on almost nothing that is recommended.",
            "percentunit",
            [Query(f"max(recommendation_interacted_ratio{{{API}}})", "interacted share")],
            steps(RED, (0.01, YELLOW), (0.05, GREEN)),
            min=0,
            width=12,
        ),
        timeseries(
            "Recommended pairs and interactions in the window",
            "The two counts behind the interacted share. Yellow from 200,000 served pairs: the "
            "default cap (MOVIEREC_QUALITY_MAX_PAIRS) is reached and the window is in effect shorter.",
            "short",
            [
                Query(f"max(recommendation_served_pairs{{{API}}})", "recommended pairs"),
                Query(f"max(recommendation_interacted_pairs{{{API}}})", "pairs with feedback"),
            ],
            steps(GREEN, (200_000, YELLOW)),
            min=0,
            width=12,
        ),
    )
    grid.add(
        timeseries(
            "Catalogue coverage by endpoint",
            "Share of the served catalogue each endpoint returned in the quality window. Red under "
            "5 %, yellow under 20 % for the chain: it keeps recommending the same few items "
            "(offline, the ML-100K chain covers 40 % with 10 items per user).",
            "percentunit",
            [Query(f"max by (endpoint) (catalogue_coverage_ratio{{{API}}})", "{{endpoint}}")],
            steps(RED, (0.05, YELLOW), (0.2, GREEN)),
            min=0,
            max=1,
            width=12,
        ),
        timeseries(
            "Fallback share",
            "Share of retrieval and recommendation answers served by a fallback (popular items for "
            "unknown users). Yellow from 20 %, red from 50 % (the MovierecFallbackSurge alert's bound).",
            "percentunit",
            [fallback_share()],
            steps(GREEN, (0.2, YELLOW), (0.5, RED)),
            min=0,
            width=12,
        ),
    )
    grid.add(
        stat(
            "Served bundle and its offline NDCG@10",
            "The served bundle's version (legend) and its chain NDCG@10 on its test users (value), "
            "from the bundle's manifest. Red under 0.05, yellow under 0.1 (ML-100K: 0.30).",
            "none",
            [
                Query(
                    f"max by (version) (model_bundle_info{{{API}}} == 1)"
                    f" * on () group_left () max(model_offline_ndcg_at_10{{{API}}})",
                    "{{version}}",
                )
            ],
            ndcg_steps(),
            decimals=4,
            width=8,
        ),
        stat(
            "Quality window",
            "The window the coverage and interacted share are computed over "
            "(MOVIEREC_QUALITY_WINDOW_SECONDS). A setting, not a health signal: base colour only.",
            "dtdurations",
            [Query(f"max(quality_window_seconds{{{API}}})", "window")],
            steps(BLUE),
            width=8,
        ),
        stat(
            "Age of the quality gauges",
            "Time since the worker that computes the quality gauges last did (every "
            "MOVIEREC_QUALITY_INTERVAL_SECONDS, 15 s by default). Yellow from 1 minute, red from 5: "
            "its thread is stuck or the database cannot be read.",
            "dtdurations",
            [Query(f"time() - max(quality_updated_timestamp_seconds{{{API}}})", "age")],
            steps(GREEN, (60, YELLOW), (300, RED)),
            width=8,
        ),
    )
    return dashboard(
        "movierec-quality",
        "movierec recommendation quality",
        "What users get and do: feedback, interacted share, catalogue coverage, fallbacks, the served model.",
        grid,
        [job_variable()],
        refresh="1m",
    )

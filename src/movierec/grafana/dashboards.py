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

from movierec.grafana.panels import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    Grid,
    Query,
    dashboard,
    query_variable,
    stat,
    steps,
    timeseries,
)

API = 'job="$job"'
TRAINING = 'job="movierec_training", dataset=~"$dataset"'
GIB = 1024**3
DAY = 86_400
BARS_MAPPING = [
    {"type": "value", "options": {"0": {"text": "not met", "color": RED}, "1": {"text": "met", "color": GREEN}}}
]


def _job_variable() -> dict[str, Any]:
    return query_variable(
        "job",
        "API job",
        "label_values(recommendation_requests_total, job)",
        "The Prometheus job that scrapes the API (prometheus/prometheus.yml: movierec-api).",
    )


def _fallback_share() -> Query:
    return Query(
        f"(sum(rate(fallback_total{{{API}}}[$__rate_interval])) or vector(0))"
        f' / sum(rate(recommendation_requests_total{{{API}, endpoint=~"retrieval|recommendations", status="200"}}'
        "[$__rate_interval]))",
        "fallback share",
    )


def _offline_ndcg() -> Query:
    return Query(f"max(model_offline_ndcg_at_10{{{API}}})", "NDCG@10")


def _ndcg_steps() -> list[tuple[float | None, str]]:
    return steps(RED, (0.05, YELLOW), (0.1, GREEN))


def api() -> dict[str, Any]:
    """Traffic, errors, latency by endpoint and stage, fallbacks, users, workers, the bundle."""
    grid = Grid()
    grid.add(
        timeseries(
            "Requests per second by endpoint",
            "Answered requests per second, every status, by route. Yellow from 1,500/s: two workers "
            "served about 2,000 chain requests/s on the 2-core reference machine (docs/serving.md).",
            "reqps",
            [
                Query(
                    f"sum by (endpoint) (rate(recommendation_requests_total{{{API}}}[$__rate_interval]))",
                    "{{endpoint}}",
                )
            ],
            steps(GREEN, (1500, YELLOW)),
        ),
        timeseries(
            "Client errors (4xx) by endpoint and status",
            "Requests refused as the client's fault: 401/403 (keys), 404 (unknown item), 413 (body too "
            "large), 422 (bad input), 429 (feedback rate limit). Yellow from 1/s, red from 10/s: a "
            "client sending that many bad requests is broken or hostile.",
            "reqps",
            [
                Query(
                    f'sum by (endpoint, status) (rate(recommendation_requests_total{{{API}, status=~"4.."}}'
                    "[$__rate_interval]))",
                    "{{endpoint}} {{status}}",
                )
            ],
            steps(GREEN, (1, YELLOW), (10, RED)),
        ),
        timeseries(
            "Server error share (5xx)",
            "Share of all answers that were 5xx (500, or 503: no bundle, database unavailable, over "
            "the time budget). Yellow from 0.1 %, red from 1 %; the MovierecServerErrors alert fires on "
            "any 5xx that lasts.",
            "percentunit",
            [
                Query(
                    f'(sum(rate(recommendation_requests_total{{{API}, status=~"5.."}}[$__rate_interval])) or vector(0))'
                    f" / sum(rate(recommendation_requests_total{{{API}}}[$__rate_interval]))",
                    "5xx share",
                )
            ],
            steps(GREEN, (0.001, YELLOW), (0.01, RED)),
            min=0,
        ),
    )
    grid.add(
        timeseries(
            "Latency p50 / p95 / p99 by endpoint",
            "Server-side time per request (stage total), from the latency histogram. Yellow from 50 ms, "
            "red from 250 ms (the MovierecHighP99Latency alert's bound for the chain's p99).",
            "s",
            [
                Query(
                    f"histogram_quantile({q}, sum by (le, endpoint) "
                    f'(rate(recommendation_latency_seconds_bucket{{{API}, stage="total"}}[$__rate_interval])))',
                    f"p{round(q * 100)} {{{{endpoint}}}}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            steps(GREEN, (0.05, YELLOW), (0.25, RED)),
            width=12,
        ),
        timeseries(
            "Latency p95 by endpoint and stage",
            "Time spent in each stage of a request: retrieval, filter and ranking of the chain, "
            "retrieval of /retrieval, ranking of /ranking. A reply served again from the reply cache "
            "has no stages. Yellow from 20 ms, red from 100 ms per stage.",
            "s",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, endpoint, stage) "
                    f'(rate(recommendation_latency_seconds_bucket{{{API}, stage!="total"}}[$__rate_interval])))',
                    "{{endpoint}} {{stage}}",
                )
            ],
            steps(GREEN, (0.02, YELLOW), (0.1, RED)),
            width=12,
        ),
    )
    grid.add(
        timeseries(
            "Fallback share",
            "Share of retrieval and recommendation answers served by a fallback (the popular list "
            "for an unknown user without a history). Yellow from 20 %, red from 50 % (the "
            "MovierecFallbackSurge alert's bound).",
            "percentunit",
            [_fallback_share()],
            steps(GREEN, (0.2, YELLOW), (0.5, RED)),
            min=0,
        ),
        timeseries(
            "Fallbacks per second by reason",
            "Answers served by a fallback, by reason. Yellow from 1/s, red from 10/s; read with the "
            "fallback share beside it.",
            "reqps",
            [Query(f"sum by (reason) (rate(fallback_total{{{API}}}[$__rate_interval]))", "{{reason}}")],
            steps(GREEN, (1, YELLOW), (10, RED)),
        ),
        stat(
            "Active users (5 minutes)",
            "Distinct user ids served in the last 5 minutes, over every worker. Red at 0: no user was served at all.",
            "short",
            [Query(f"sum(active_users_count{{{API}}})", "users")],
            steps(RED, (1, GREEN)),
            width=8,
            height=8,
        ),
    )
    grid.add(
        timeseries(
            "Resident memory per worker",
            "Each worker's resident memory (read from /proc at scrape time, one series per pid). "
            "Yellow from 2 GiB, red from 4 GiB: an ML-100K worker holds its bundle, TensorFlow and "
            "the precomputed per-user tables in well under that.",
            "bytes",
            [Query(f"sum by (pid) (process_resident_memory_bytes{{{API}}})", "pid {{pid}}")],
            steps(GREEN, (2 * GIB, YELLOW), (4 * GIB, RED)),
            width=6,
        ),
        timeseries(
            "CPU per worker",
            "Each worker's CPU time per second (1 = one core). A worker serves requests on one "
            "thread: yellow from 80 %, red from 95 % of a core means it is saturated.",
            "percentunit",
            [Query(f"sum by (pid) (rate(process_cpu_seconds_total{{{API}}}[$__rate_interval]))", "pid {{pid}}")],
            steps(GREEN, (0.8, YELLOW), (0.95, RED)),
            min=0,
            width=6,
        ),
        timeseries(
            "Open file descriptors per worker (share of the limit)",
            "Each worker's open file descriptors over its limit. Yellow from 50 %, red from 80 %: "
            "at the limit, connections and the database can no longer be opened.",
            "percentunit",
            [
                Query(
                    f"sum by (pid) (process_open_fds{{{API}}}) / sum by (pid) (process_max_fds{{{API}}})",
                    "pid {{pid}}",
                )
            ],
            steps(GREEN, (0.5, YELLOW), (0.8, RED)),
            min=0,
            width=6,
        ),
        stat(
            "Worker uptime",
            "Time since each worker started. Red under 1 minute, yellow under 10: a young worker "
            "after the service's start means one crashed and was replaced.",
            "dtdurations",
            [Query(f"time() - max by (pid) (process_start_time_seconds{{{API}}})", "pid {{pid}}")],
            steps(RED, (60, YELLOW), (600, GREEN)),
            height=8,
        ),
    )
    grid.add(
        stat(
            "Served bundle version",
            "The bundle version (manifest digest) each worker serves. A version is neither good "
            "nor bad, so only a base colour; the next panel turns yellow when workers disagree.",
            "none",
            [Query(f"max by (version) (model_bundle_info{{{API}}}) == 1", "{{version}}")],
            steps(BLUE),
            text_mode="name",
        ),
        stat(
            "Bundle versions served at once",
            "Distinct bundle versions the workers serve. 1 is normal; yellow from 2: a reload is "
            "in progress, or a worker failed to load the new bundle (see its log).",
            "none",
            [Query(f"count(max by (version) (model_bundle_info{{{API}}}) == 1)", "versions")],
            steps(GREEN, (2, YELLOW)),
        ),
        stat(
            "Bundle load time",
            "Seconds the current bundle took to load and check (slowest worker). Yellow from 60 s, red "
            "from 300 s: a reload that slow keeps the old bundle serving for minutes.",
            "s",
            [Query(f"max(model_load_time_seconds{{{API}}})", "load time")],
            steps(GREEN, (60, YELLOW), (300, RED)),
        ),
        stat(
            "Offline chain NDCG@10 of the served bundle",
            "The chain's NDCG@10 on its test users, from the served bundle's manifest. Red under "
            "0.05, yellow under 0.1: ML-100K's chain scores 0.30 and most-popular 0.12.",
            "none",
            [_offline_ndcg()],
            _ndcg_steps(),
            decimals=4,
        ),
    )
    grid.add(
        timeseries(
            "Request-log rows dropped per second",
            "Request-log rows lost because the log writer's queue was full or the database refused "
            "them. Red from any: replay and the quality gauges then miss those requests.",
            "cps",
            [Query(f"sum(rate(request_log_dropped_total{{{API}}}[$__rate_interval]))", "dropped")],
            steps(GREEN, (0.001, RED)),
            min=0,
            width=12,
            height=6,
        ),
        timeseries(
            "Reply cache hit share",
            "Share of cacheable retrieval and recommendation requests (a known user, no history "
            "or demographics sent) answered from the worker's reply cache. A speed aid, not a "
            "health signal: its level follows how often users repeat a request, so base colour only.",
            "percentunit",
            [
                Query(
                    f'sum(rate(reply_cache_total{{{API}, result="hit"}}[$__rate_interval]))'
                    f" / sum(rate(reply_cache_total{{{API}}}[$__rate_interval]))",
                    "hit share",
                )
            ],
            steps(BLUE),
            min=0,
            max=1,
            width=12,
            height=6,
        ),
    )
    return dashboard(
        "movierec-api",
        "movierec API",
        "The recommendation API: traffic, errors, latency, fallbacks, workers and the served bundle.",
        grid,
        [_job_variable()],
    )


def training() -> dict[str, Any]:
    """The training runs' Pushgateway metrics over time, per dataset."""
    grid = Grid()
    grid.add(
        timeseries(
            "Retrieval Recall@100 by dataset",
            "The first stage's Recall@100 on the test users, pushed after each training run. Red "
            "under 0.05, yellow under 0.15 (a broken model); ML-100K scores 0.60, the synthetic "
            "dataset 0.18. The real bars are relative to the baselines: see Quality bars met.",
            "percentunit",
            [Query(f"max by (dataset) (retrieval_accuracy{{{TRAINING}}})", "{{dataset}}")],
            steps(RED, (0.05, YELLOW), (0.15, GREEN)),
            min=0,
        ),
        timeseries(
            "Chain NDCG@10 by dataset",
            "The chain's (retrieval then ranking) NDCG@10 on the test users, pushed after each "
            "training run. Red under 0.03, yellow under 0.08 (a broken model); ML-100K scores 0.30, "
            "the synthetic dataset 0.096.",
            "none",
            [Query(f"max by (dataset) (ranking_ndcg{{{TRAINING}}})", "{{dataset}}")],
            steps(RED, (0.03, YELLOW), (0.08, GREEN)),
            min=0,
            decimals=3,
        ),
        stat(
            "Quality bars met",
            "1 when the last run met every quality bar (chain NDCG@10 against plain EASE and the "
            "best baseline, retrieval Recall@100 against the best baseline, the ANN indexes' "
            "recall), else 0. Red when not met: the version is registered but not promoted.",
            "none",
            [Query(f"max by (dataset) (training_quality_bars_met{{{TRAINING}}})", "{{dataset}}")],
            steps(RED, (1, GREEN)),
            mappings=BARS_MAPPING,
            width=8,
            height=8,
        ),
    )
    grid.add(
        timeseries(
            "Stage durations of the last run",
            "Wall time of each pipeline stage in the last run. Yellow from 10 minutes, red from 30 "
            "for one stage: on the reference machine the slowest (ablation) takes under 4.",
            "s",
            [Query(f"max by (dataset, stage) (training_duration_seconds{{{TRAINING}}})", "{{dataset}} {{stage}}")],
            steps(GREEN, (600, YELLOW), (1800, RED)),
            width=12,
        ),
        stat(
            "Pipeline duration (sum of the stages)",
            "The stages' durations added up. Yellow from 30 minutes, red from an hour: the whole "
            "pipeline takes 12 minutes on the reference machine.",
            "s",
            [Query(f"sum by (dataset) (training_duration_seconds{{{TRAINING}}})", "{{dataset}}")],
            steps(GREEN, (1800, YELLOW), (3600, RED)),
            width=6,
            height=8,
        ),
        stat(
            "Time since the last successful training push",
            "Age of the last push of a finished run. The DAG runs weekly: yellow after 8 days (one "
            "run late), red after 15 (two runs missed).",
            "dtdurations",
            [
                Query(
                    f"time() - max by (dataset) (training_last_success_timestamp_seconds{{{TRAINING}}})", "{{dataset}}"
                )
            ],
            steps(GREEN, (8 * DAY, YELLOW), (15 * DAY, RED)),
            width=6,
            height=8,
        ),
    )
    grid.add(
        timeseries(
            "Registered and champion versions",
            "The model registry's latest registered version and the champion's, per dataset. A "
            "version number is neither good nor bad, so only a base colour; the next panel shows "
            "the gap between them.",
            "none",
            [Query(f"max by (dataset, alias) (model_version{{{TRAINING}}})", "{{dataset}} {{alias}}")],
            steps(BLUE),
            decimals=0,
            width=12,
        ),
        stat(
            "Registered versions ahead of the champion",
            "Latest registered version minus the champion's (with no champion yet, every registered "
            "version counts). 0: the last run was promoted; yellow from 1, red from 3: recent runs "
            "missed the bars or the promotion tolerance.",
            "none",
            [
                Query(
                    f'max by (dataset) (model_version{{{TRAINING}, alias="registered"}}) - ('
                    f'max by (dataset) (model_version{{{TRAINING}, alias="champion"}})'
                    f' or 0 * max by (dataset) (model_version{{{TRAINING}, alias="registered"}}))',
                    "{{dataset}}",
                )
            ],
            steps(GREEN, (1, YELLOW), (3, RED)),
            width=12,
            height=8,
        ),
    )
    variable = query_variable(
        "dataset",
        "Dataset",
        "label_values(ranking_ndcg, dataset)",
        "The datasets training runs pushed metrics for (the Pushgateway's grouping key).",
        include_all=True,
    )
    return dashboard(
        "movierec-training",
        "movierec training",
        "What each training run pushed to the Pushgateway: accuracy, quality bars, durations, versions.",
        grid,
        [variable],
        refresh="1m",
    )


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
            [_fallback_share()],
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
            _ndcg_steps(),
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
        [_job_variable()],
        refresh="1m",
    )


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "movierec-api.json": api,
    "movierec-training.json": training,
    "movierec-quality.json": quality,
}

"""The API dashboard: traffic, errors, latency by endpoint and stage, fallbacks, users, workers, the bundle."""

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
from movierec.grafana.queries import API, fallback_share, job_variable, ndcg_steps, offline_ndcg

GIB = 1024**3


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
            [fallback_share()],
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
            [offline_ndcg()],
            ndcg_steps(),
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
        [job_variable()],
    )

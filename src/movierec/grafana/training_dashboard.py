"""The training dashboard: what each training run pushed to the Pushgateway, per dataset, over time."""

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
    query_variable,
    stat,
    steps,
    timeseries,
)
from movierec.grafana.queries import TRAINING

DAY = 86_400
BARS_MAPPING = [
    {"type": "value", "options": {"0": {"text": "not met", "color": RED}, "1": {"text": "met", "color": GREEN}}}
]


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

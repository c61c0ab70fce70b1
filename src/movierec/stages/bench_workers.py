"""``movierec bench workers``: the retrieval stage trained by one worker and by several, seed
by seed, with the test quality and wall time of each (docs/distributed-training.md).

Each run is the real stage started by the launcher (:mod:`movierec.stages.distributed`; one
worker is one process without ``TF_CONFIG``, as ``movierec train retrieval`` runs), with one
training seed, writing into a scratch copy of the stage's outputs, so the project's own
outputs are untouched. Quality is scored on the test period's warm users (the ones the
towers serve; cold users get the same popularity list from every run), as the evaluate
stage scores it: Recall@10, Recall@100 and NDCG@10 of the stage's test lists.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from movierec.data.matrix import InteractionMatrix
from movierec.data.parts import read_parts
from movierec.evaluation import ranking_metrics
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.evaluation.report import load_recommendations
from movierec.io import read_json
from movierec.paths import ProjectPaths
from movierec.settings import Settings, override
from movierec.stages import distributed
from movierec.stages.train_retrieval import OUTPUTS

STAGE = "retrieval"  # the stage measured; its report is reports/STAGE.json

METRICS = ("recall@10", "recall@100", "ndcg@10")


def test_period(paths: ProjectPaths) -> EvalSet:
    """The test period's evaluation set (known past: training plus validation)."""
    known = pa.concat_tables([read_parts(paths.split, "train"), read_parts(paths.split, "valid")])
    return build_eval_set(InteractionMatrix.from_table(known), read_parts(paths.split, "test"))


def warm_quality(lists: Path, evalset: EvalSet) -> dict[str, float]:
    """Recall@10, Recall@100 and NDCG@10 of a list file over the warm test users."""
    rows = load_recommendations(lists, evalset, 100)
    warm = ~evalset.cold_user
    metrics = ranking_metrics(rows[warm], evalset.relevant[warm], [10, 100])
    return {name: round(metrics[name], 6) for name in METRICS}


def run(
    settings: Settings,
    paths: ProjectPaths,
    workers: list[int],
    seeds: list[int],
    scratch: Path | None = None,
) -> dict[str, Any]:
    """Train the retrieval stage once per (seed, worker count) and score each run.

    Args:
        settings: the settings every run uses (``train.seeds`` is replaced by each seed).
        paths: the project (its prepared data, split and features are read, nothing written).
        workers: worker counts to compare, e.g. ``[1, 2]`` (1 is the reference).
        seeds: training seeds; the spread over them is the yardstick for a difference.
        scratch: where the runs' outputs go while they are scored (default: the system's
            temporary folder); removed at the end.

    Returns:
        ``rows`` (one per run: workers, seed, seconds, chosen epochs, quality),
        ``summary`` (per worker count and metric: mean, standard deviation, min and max
        over seeds, and the mean wall time) and ``paired`` (per worker count other than the
        first: the mean and the largest absolute difference from the first, seed by seed).
    """
    evalset = test_period(paths)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="movierec-bench-workers-", dir=scratch) as tmp:
        for seed in seeds:
            for count in workers:
                run_dir = Path(tmp) / f"workers{count}-seed{seed}"
                layout = dataclasses.replace(paths, **{name: run_dir / name for name in OUTPUTS})
                result = distributed.run(override(settings, {"train.seeds": [seed]}), layout, "train_retrieval", count)
                report = read_json(layout.reports / f"{STAGE}.json")
                rows.append(
                    {
                        "workers": count,
                        "seed": seed,
                        "seconds": result["seconds"],
                        "chosen_epochs": report["chosen_epochs"],
                        **warm_quality(layout.retrieval_recs / f"retrieval.seed{seed}.parquet", evalset),
                    }
                )
    return {"rows": rows, "summary": summarise(rows, workers), "paired": paired(rows, workers)}


def summarise(rows: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    """Per worker count: each metric's mean, standard deviation, min and max over seeds."""
    out: dict[str, Any] = {}
    for count in workers:
        mine = [r for r in rows if r["workers"] == count]
        out[str(count)] = {
            name: {
                "mean": round(statistics.fmean(r[name] for r in mine), 6),
                "std": round(statistics.stdev([r[name] for r in mine]), 6) if len(mine) > 1 else 0.0,
                "min": min(r[name] for r in mine),
                "max": max(r[name] for r in mine),
            }
            for name in (*METRICS, "seconds")
        }
    return out


def paired(rows: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    """Per worker count after the first: its difference from the first, seed by seed."""
    reference = {r["seed"]: r for r in rows if r["workers"] == workers[0]}
    out: dict[str, Any] = {}
    for count in workers[1:]:
        diffs = {
            name: [r[name] - reference[r["seed"]][name] for r in rows if r["workers"] == count] for name in METRICS
        }
        out[str(count)] = {
            name: {"mean": round(statistics.fmean(d), 6), "max_abs": round(max(abs(x) for x in d), 6)}
            for name, d in diffs.items()
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    """The summary as a text table: one row per worker count, mean ± sd over seeds."""
    lines = [f"{'workers':>7}  " + "  ".join(f"{m:>17}" for m in (*METRICS, "seconds"))]
    for count, stats in result["summary"].items():
        cells = [f"{stats[m]['mean']:.4f} ± {stats[m]['std']:.4f}" for m in METRICS]
        cells.append(f"{stats['seconds']['mean']:.1f} ± {stats['seconds']['std']:.1f}")
        lines.append(f"{count:>7}  " + "  ".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)

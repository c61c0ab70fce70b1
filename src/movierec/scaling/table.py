"""``movierec scale table``: several runs' measurements side by side, with growth exponents.

A stage whose time grows as ``c * events^b`` has growth exponent ``b``: the slope of the
least-squares line through ``(log events, log time)``. ``b = 1`` is linear, ``b < 1``
means fixed costs still dominate (start-up, model loading), ``b > 1`` that the stage will
take a larger share of the time on larger data. The same fit is made for peak memory.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from movierec.errors import DataError
from movierec.io import atomic_file, write_json

TOTAL = "pipeline"  # the row summing every dvc.yaml stage (not the data generator)


def growth_exponent(events: list[float], values: list[float]) -> float | None:
    """Slope of ``log(values)`` against ``log(events)``; None with fewer than two distinct sizes
    or a value that is not positive."""
    x, y = np.asarray(events, np.float64), np.asarray(values, np.float64)
    if x.size < 2 or np.unique(x).size < 2 or (x <= 0).any() or (y <= 0).any():
        return None
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return round(float(slope), 3)


def scaling_table(runs: list[dict[str, Any]], order: list[str] | None = None) -> dict[str, Any]:
    """Per stage, each run's wall time and peak memory, and their growth exponents.

    Args:
        runs: the records of :func:`movierec.scaling.runner.run_scale`; each size once (the
            last record of a size wins).
        order: the stages in pipeline order (the rows follow it; ``synth`` first, stages it
            does not name last); None keeps the records' order.

    Returns:
        ``{"sizes": [...], "stages": {stage: {"wall_s", "peak_rss_gb", "cpu_s", "time_exponent",
        "cpu_exponent", "memory_exponent"}}, "runs": [...], "references": [...]}``, sizes in events written,
        smallest first. A run on a real dataset (``scale run --source``) is not a size: it is
        listed under ``references`` (its source, each stage's figures, the pipeline's) and is
        shown as a column of its own, outside the fits.

    Raises:
        DataError: a record has no dataset or no stage measured.
    """
    by_size: dict[int, dict[str, Any]] = {}
    references = []
    for run in runs:
        if "dataset" not in run or not run.get("stages"):
            raise DataError(f"a scale run without measurements (status {run.get('status')!r}, work {run.get('work')})")
        if not run["dataset"].get("synthetic", True):
            references.append(_reference(run))
            continue
        by_size[int(run["dataset"]["ratings"])] = run
    sizes = sorted(by_size)
    ordered = [by_size[s] for s in sizes]
    labels = [_count(int(r.get("events_target", s)), exact=True) for s, r in zip(sizes, ordered)]
    names: list[str] = []
    for run in ordered:
        names += [n for n in run["stages"] if n not in names]
    if order is not None:
        rank = {name: i for i, name in enumerate(["synth", *order])}
        names.sort(key=lambda name: rank.get(name, len(rank)))
    stages: dict[str, Any] = {}
    for name in [*names, TOTAL]:
        wall, peak, cpu = [], [], []
        for run in ordered:
            if name == TOTAL:
                done = run.get("status") == "complete" and not run.get("partial")
                pipeline = [v for k, v in run["stages"].items() if k != "synth"]
                wall.append(run.get("pipeline_wall_s") if done else None)
                peak.append(max(v["peak_rss_mb"] for v in pipeline) / 1024 if done else None)
                cpu.append(round(sum(_cpu(v) for v in pipeline), 1) if done else None)
                continue
            stage = run["stages"].get(name)
            ok = stage is not None and stage["returncode"] == 0
            wall.append(stage["wall_s"] if ok else None)
            peak.append(round(stage["peak_rss_mb"] / 1024, 3) if ok else None)
            cpu.append(round(_cpu(stage), 1) if ok else None)
        measured_at = [s for s, w in zip(sizes, wall) if w is not None]
        stages[name] = {
            "wall_s": wall,
            "peak_rss_gb": [None if p is None else round(p, 3) for p in peak],
            "cpu_s": cpu,
            "time_exponent": growth_exponent(measured_at, [w for w in wall if w is not None]),
            "cpu_exponent": growth_exponent(
                [s for s, c in zip(sizes, cpu) if c is not None], [c for c in cpu if c is not None]
            ),
            "memory_exponent": growth_exponent(measured_at, [p for p in peak if p is not None]),
        }
        # the same figures keyed by size, which `dvc metrics show` lists (it skips lists)
        stages[name]["by_size"] = {
            label: {"wall_s": w, "cpu_s": c, "peak_rss_gb": p}
            for label, w, c, p in zip(labels, wall, cpu, stages[name]["peak_rss_gb"])
            if w is not None
        }
    return {
        "sizes": sizes,
        "labels": labels,
        "users": [int(r["dataset"]["users"]) for r in ordered],
        "items": [int(r["dataset"]["items"]) for r in ordered],
        "stages": stages,
        "runs": [
            {
                "events": s,
                "status": r.get("status"),
                "failed_stage": r.get("failed_stage"),
                "machine": r.get("machine"),
                "code": r.get("code"),
                "profile": r.get("profile"),
                "command": r.get("command"),
                "started_at": r.get("started_at"),
            }
            for s, r in zip(sizes, ordered)
        ],
        "references": references,
    }


def _reference(run: dict[str, Any]) -> dict[str, Any]:
    """A real dataset's run as a column: each finished stage's figures and the pipeline's."""
    stages = {
        name: {"wall_s": v["wall_s"], "cpu_s": round(_cpu(v), 1), "peak_rss_gb": round(v["peak_rss_mb"] / 1024, 3)}
        for name, v in run["stages"].items()
        if v["returncode"] == 0
    }
    done = run.get("status") == "complete" and not run.get("partial")
    pipeline = [v for k, v in stages.items() if k != "synth"]
    if done and pipeline:
        stages[TOTAL] = {
            "wall_s": run.get("pipeline_wall_s"),
            "cpu_s": round(sum(v["cpu_s"] for v in pipeline), 1),
            "peak_rss_gb": max(v["peak_rss_gb"] for v in pipeline),
        }
    return {
        "source": run["dataset"].get("source"),
        "status": run.get("status"),
        "code": run.get("code"),
        "stages": stages,
    }


def _cpu(stage: dict[str, Any]) -> float:
    """CPU seconds of a stage, user and system (on a shared machine wall time grows with the
    others' load; CPU time much less)."""
    return float(stage.get("user_s", 0.0)) + float(stage.get("system_s", 0.0))


def write_scaling(table: dict[str, Any], json_path: Path, csv_path: Path) -> None:
    """Write the table as JSON (DVC metrics) and as one CSV row per size (DVC plots: each
    stage's seconds as ``<stage>_s`` and peak memory as ``<stage>_gb``)."""
    write_json(json_path, table)
    columns = ["events"] + [f"{n}_{unit}" for unit in ("s", "gb") for n in table["stages"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for i, size in enumerate(table["sizes"]):
        row: list[Any] = [size]
        for key in ("wall_s", "peak_rss_gb"):
            row += ["" if v[key][i] is None else v[key][i] for v in table["stages"].values()]
        writer.writerow(row)
    with atomic_file(csv_path) as handle:
        handle.write(buffer.getvalue())


def markdown(table: dict[str, Any]) -> str:
    """The table in Markdown: a row per stage; per size its wall time, CPU time and peak
    memory; then the growth exponents of time and of peak memory."""
    labels = table.get("labels") or [_count(s) for s in table["sizes"]]
    references = table.get("references") or []
    head = ["stage", *[f"{r['source']} (real)" for r in references], *[f"{label} events" for label in labels]]
    head += ["time exp.", "CPU exp.", "memory exp."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in table["stages"].items():
        cells = [f"**{name}**" if name == TOTAL else name]
        for reference in references:
            got = reference["stages"].get(name)
            cells.append("–" if got is None else _cell(got["wall_s"], got["cpu_s"], got["peak_rss_gb"]))
        for wall, cpu, peak in zip(row["wall_s"], row["cpu_s"], row["peak_rss_gb"]):
            cells.append("–" if wall is None else _cell(wall, cpu, peak))
        cells += [_exp(row["time_exponent"]), _exp(row.get("cpu_exponent")), _exp(row["memory_exponent"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(wall: float, cpu: float | None, peak: float | None) -> str:
    """``12 s (20 s CPU), 1.50 GB``."""
    used = f" ({_seconds(cpu)} CPU)" if cpu else ""
    return f"{_seconds(wall)}{used}, {_gb(peak)}"


def _count(n: int, exact: bool = False) -> str:
    """``25M``, ``1.50M``, ``20K`` (``exact``: the whole number where it is not a round one)."""
    for unit, size in (("M", 1_000_000), ("K", 1_000)):
        if n >= size:
            return f"{n // size}{unit}" if n % size == 0 else (str(n) if exact else f"{n / size:.2f}{unit}")
    return str(n)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def _gb(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} GB"


def _exp(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def read_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """The run records in ``paths`` (each a JSON written by ``movierec scale run``)."""
    from movierec.io import read_json

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise DataError("no such scale run record", path=missing[0])
    return [read_json(p) for p in paths]

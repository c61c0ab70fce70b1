"""The index benchmark's numbers: repetitions aggregated, the targets judged, the table and the plot."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# measured per repetition, aggregated as mean, min and max (the spread)
METRICS = (
    "build_seconds",
    "index_bytes",
    "p50_ms",
    "p99_ms",
    "cpu_p99_ms",
    "batch_qps",
    "recall",
    "speedup_p99",
    "speedup_p50",
    "speedup_cpu_p99",
)
TARGET_ITEMS = 1_000_000
# key, label, comparison, threshold; judged on the worst repetition of the served index
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("recall", "recall@k against brute force", ">=", 0.95),
    ("p99_ms", "p99 ms for one query", "<=", 5.0),
    ("speedup_p99", "times faster than brute force (p99)", ">=", 10.0),
)
SERVED_KIND = {"faiss": "faiss-ivf", "scann": "scann"}  # the rule's name -> the benchmark's index


def spread(values: Iterable[float]) -> dict[str, float]:
    """Mean, min and max of ``values`` (rounded to 4 significant decimals)."""
    array = np.asarray(list(values), np.float64)
    return {
        "mean": round(float(array.mean()), 4),
        "min": round(float(array.min()), 4),
        "max": round(float(array.max()), 4),
    }


def with_speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``speedup_p99``, ``speedup_p50`` and ``speedup_cpu_p99``: brute force's
    latency over its own, in the same repetition (absent when brute force was not measured)."""
    brute = {(r["n_items"], r["repeat"]): r for r in rows if r["index"] == "brute"}
    out = []
    for row in rows:
        base = brute.get((row["n_items"], row["repeat"]))
        extra = {}
        if base is not None:
            for name in ("p99", "p50", "cpu_p99"):
                if f"{name}_ms" in base and f"{name}_ms" in row:
                    extra[f"speedup_{name}"] = round(base[f"{name}_ms"] / max(row[f"{name}_ms"], 1e-9), 2)
        out.append({**row, **extra})
    return out


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, index): every metric's mean and spread over the repetitions, the
    settings of each repetition, and the ladders (for the plot)."""
    rows = with_speedups(rows)
    keys = list(dict.fromkeys((r["n_items"], r["index"]) for r in rows))
    out = []
    for n_items, kind in keys:
        group = [r for r in rows if r["n_items"] == n_items and r["index"] == kind]
        entry: dict[str, Any] = {"n_items": n_items, "index": kind, "repeats": len(group)}
        for metric in METRICS:
            if all(metric in r for r in group):
                entry[metric] = spread(r[metric] for r in group)
        entry["bytes_per_item"] = round(entry["index_bytes"]["mean"] / n_items, 1)
        entry["structure"] = group[0]["structure"]
        entry["settings"] = [r["setting"] for r in group]
        out.append(entry)
    return out


def judge(summary: list[dict[str, Any]], served: str, at_items: int = TARGET_ITEMS) -> dict[str, Any]:
    """The targets for the served index at ``at_items`` items, on its worst repetition.

    Returns:
        ``{"index", "n_items", "checks": [{key, label, value, threshold, ok}], "ok"}``; ``ok``
        is None when that size or index was not measured.
    """
    kind = SERVED_KIND.get(served, served)
    entry = next((e for e in summary if e["index"] == kind and e["n_items"] == at_items), None)
    checks = []
    for key, label, op, threshold in TARGETS:
        if entry is None or key not in entry:
            checks.append({"key": key, "label": label, "value": None, "threshold": threshold, "ok": None})
            continue
        worst = entry[key]["min"] if op == ">=" else entry[key]["max"]
        ok = worst >= threshold if op == ">=" else worst <= threshold
        checks.append({"key": key, "label": f"{label} {op} {threshold:g}", "value": worst, "ok": ok})
    verdicts = [c["ok"] for c in checks]
    return {
        "index": kind,
        "n_items": at_items,
        "checks": checks,
        "ok": None if None in verdicts else all(verdicts),
    }


def _cell(stats: dict[str, float] | None, digits: int, scale: float = 1.0) -> str:
    """``mean (min-max)``, or the mean alone when every repetition agrees."""
    if stats is None:
        return "-"
    mean, low, high = (stats[k] * scale for k in ("mean", "min", "max"))
    text = f"{mean:,.{digits}f}"
    return text if f"{low:.{digits}f}" == f"{high:.{digits}f}" else f"{text} ({low:,.{digits}f}-{high:,.{digits}f})"


def _setting(entry: dict[str, Any]) -> str:
    parts = [" ".join(f"{k}={v}" for k, v in s.items()) for s in entry["settings"]]
    unique = list(dict.fromkeys(parts))
    structure = " ".join(f"{k}={v}" for k, v in entry["structure"].items() if k != "transform")
    return "; ".join(p for p in [structure, " | ".join(u for u in unique if u)] if p) or "exact"


def format_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a fixed-width table: one line per (size, index), mean (min-max)."""
    header = (
        f"{'items':>10}  {'index':<10} {'build s':>16} {'MB':>8} {'p50 ms':>20} {'p99 ms':>20} "
        f"{'p99 CPU ms':>20} {'q/s (batch)':>22} {'recall@k':>22} {'x brute (p99)':>20}  structure; search setting"
    )
    lines = [header, "-" * len(header)]
    for e in summary:
        lines.append(
            f"{e['n_items']:>10,}  {e['index']:<10} {_cell(e.get('build_seconds'), 1):>16} "
            f"{_cell(e.get('index_bytes'), 0, 1 / 2**20):>8} {_cell(e.get('p50_ms'), 3):>20} "
            f"{_cell(e.get('p99_ms'), 3):>20} {_cell(e.get('cpu_p99_ms'), 3):>20} {_cell(e.get('batch_qps'), 0):>22} "
            f"{_cell(e.get('recall'), 4):>22} {_cell(e.get('speedup_p99'), 1):>20}  {_setting(e)}"
        )
    return "\n".join(lines)


def format_targets(verdict: dict[str, Any]) -> str:
    """The targets' lines (worst repetition of the served index)."""
    lines = [f"targets at {verdict['n_items']:,} items, served index {verdict['index']} (worst repetition):"]
    for check in verdict["checks"]:
        if check["ok"] is None:
            lines.append(f"  {check['label']}: not measured")
        else:
            lines.append(f"  {check['label']}: {check['value']:g}  {'ok' if check['ok'] else 'MISSED'}")
    return "\n".join(lines)


def plot_recall_latency(rows: list[dict[str, Any]], target: Any, target_recall: float, p99_ms: float = 5.0) -> None:
    """Recall@k against single-query p99 for every rung of every tuning ladder (first
    repetition), one panel per size, brute force as a point; written as a PNG to ``target``
    (a path or a binary file). The p99 is of CPU time when measured (one thread): on a shared
    machine the wall-clock p99 of 200 queries mostly shows when other work preempted them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "cpu_p99_ms" if all("cpu_p99_ms" in r for r in rows) else "p99_ms"
    sizes = sorted({r["n_items"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, n_items in zip(axes[0], sizes):
        first = [r for r in rows if r["n_items"] == n_items and r["repeat"] == 0]
        for row in first:
            if row["index"] == "brute":
                ax.scatter([row[key]], [1.0], marker="*", s=120, color="black", label="brute", zorder=3)
                continue
            ladder = sorted(row["ladder"], key=lambda r: (r.get("reorder", 0), r["recall"]))
            for reorder in sorted({r.get("reorder") for r in ladder}, key=lambda v: v or 0):
                part = [r for r in ladder if r.get("reorder") == reorder]
                label = row["index"] + (f" (reorder {reorder})" if reorder else "")
                ax.plot(
                    [r.get(key, r["p99_ms"]) for r in part], [r["recall"] for r in part], marker="o", ms=3, label=label
                )
        ax.axhline(target_recall, color="grey", linestyle="--", linewidth=0.8)
        ax.axvline(p99_ms, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{'CPU ' if key == 'cpu_p99_ms' else ''}p99 ms, one query on one thread (tuning queries)")
        ax.set_ylabel("recall@k against brute force")
        ax.set_title(f"{n_items:,} items")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(target, format="png", dpi=110)
    plt.close(fig)

"""The benchmark's numbers: one row per scenario, the targets, the mean over runs, and the printed tables."""

from __future__ import annotations

from typing import Any

STAGE_ORDER = ("retrieval", "filter", "ranking", "total")
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
RATE_LIMITED = 429
PERCENTILES = (("p50_ms", "50"), ("p90_ms", "90"), ("p95_ms", "95"), ("p99_ms", "99"), ("p999_ms", "99.9"))
SUMMARY_FIELDS = ("rps", "p50_ms", "p95_ms", "p99_ms", "wrk_cpu", "errors")

# key, label, comparison, threshold: all computed from the scenarios of one run
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("chain_rps_over_floor_rps", "chain req/s / floor req/s", ">=", 0.33),
    ("retrieval_rps_over_floor_rps", "retrieval req/s / floor req/s", ">=", 0.5),
    ("chain_p99_ms", "chain p99 ms", "<=", 50.0),
    ("floor_p99_ms", "floor p99 ms", "<=", 20.0),
)
# reported beside the targets, not judged: the same ratios when every reply is computed anew
# (the "-fresh" scenarios ask the service not to answer from its reply cache)
REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("chain_fresh_rps_over_floor_rps", "chain-fresh req/s / floor req/s", "chain-fresh"),
    ("retrieval_fresh_rps_over_floor_rps", "retr-fresh req/s / floor req/s", "retr-fresh"),
)


def summarize(name: str, label: str, wrk: dict[str, Any], stages: dict[str, Any] | None = None) -> dict[str, Any]:
    """One scenario's row from what wrk measured (:func:`bench_wrk.run_wrk`).

    ``errors`` counts answers other than 2xx (except 429, counted apart as
    ``rate_limited``) and wrk's socket errors (connect, read, write, timeout); ``rps``
    counts 2xx answers only. Percentiles are wrk's, over every answer, in milliseconds.
    ``wrk_cpu`` is wrk's CPU seconds over its wall seconds (1.0: one core busy).
    """
    statuses = {int(k): int(v) for k, v in wrk.get("statuses", {}).items()}
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    limited = statuses.get(RATE_LIMITED, 0)
    socket = {kind: int(wrk.get("errors", {}).get(kind, 0)) for kind in SOCKET_ERRORS}
    bad_status = sum(n for code, n in statuses.items() if not 200 <= code < 300 and code != RATE_LIMITED)
    seconds = max(float(wrk.get("duration_us", 0)) / 1e6, 1e-9)
    latency = wrk.get("latency_us", {})
    answered = int(wrk.get("requests", 0))

    def ms(micros: Any) -> float | None:
        return round(float(micros) / 1000.0, 3) if answered and micros is not None else None

    row: dict[str, Any] = {"scenario": name, "endpoint": label, "requests": answered, "ok": ok}
    row.update(errors=bad_status + sum(socket.values()), rate_limited=limited)
    row.update({key: ms(latency.get("percentiles", {}).get(p)) for key, p in PERCENTILES})
    row.update(mean_ms=ms(latency.get("mean")), max_ms=ms(latency.get("max")))
    row.update(rps=round(ok / seconds, 2), seconds=round(seconds, 3))
    wall = float(wrk.get("wrk_wall_seconds") or 0.0)
    row["wrk_cpu"] = round(float(wrk.get("wrk_cpu_seconds", 0.0)) / wall, 3) if wall > 0 else None
    busy = wrk.get("machine_cpu")
    row["machine_cpu"] = None if busy is None else round(float(busy), 3)
    row.update(statuses={str(k): v for k, v in sorted(statuses.items())}, socket_errors=socket)
    row["server_stages"] = stages or {}
    return row


def targets(scenarios: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The product targets, from the scenarios of one run: value, target and whether it is met."""
    floor, chain, retrieval = (scenarios.get(n) or {} for n in ("floor", "chain", "retrieval"))

    def ratio(top: dict[str, Any]) -> float | None:
        if not floor.get("rps") or top.get("rps") is None:
            return None
        return round(top["rps"] / floor["rps"], 3)

    values = {
        "chain_rps_over_floor_rps": ratio(chain),
        "retrieval_rps_over_floor_rps": ratio(retrieval),
        "chain_p99_ms": chain.get("p99_ms"),
        "floor_p99_ms": floor.get("p99_ms"),
    }
    judged = {key: _judge(values[key], op, limit) for key, _, op, limit in TARGETS}
    for key, _, name in REFERENCES:
        if name in scenarios:
            judged[key] = {"value": ratio(scenarios[name]), "target": None, "met": None}
    return judged


def _judge(value: float | None, op: str, limit: float) -> dict[str, Any]:
    met = value is not None and (value >= limit if op == ">=" else value <= limit)
    return {"value": value, "target": f"{op} {limit:g}", "met": met}


def _stats(values: list[float | None]) -> dict[str, float | None]:
    got = [float(v) for v in values if v is not None]
    if not got:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(sum(got) / len(got), 3), "min": round(min(got), 3), "max": round(max(got), 3)}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, min and max over runs of each scenario's main numbers and of each target's value."""
    names = list(runs[0]["scenarios"]) if runs else []
    scenarios = {
        name: {field: _stats([run["scenarios"][name].get(field) for run in runs]) for field in SUMMARY_FIELDS}
        for name in names
    }
    out_targets = {}
    for key, _, op, limit in TARGETS:
        stats = _stats([run["targets"][key]["value"] for run in runs])
        out_targets[key] = {
            **stats,
            **{k: v for k, v in _judge(stats["mean"], op, limit).items() if k != "value"},
            "runs_met": sum(1 for run in runs if run["targets"][key]["met"]),
        }
    for key, _, _ in REFERENCES:
        if all(key in run["targets"] for run in runs) and runs:
            out_targets[key] = {**_stats([run["targets"][key]["value"] for run in runs]), "target": None, "met": None}
    return {"runs": len(runs), "scenarios": scenarios, "targets": out_targets}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_run(run: dict[str, Any], title: str) -> str:
    """One run's table, its server-side stages and its targets."""
    head = (
        f"{'scenario':<11} {'endpoint':<32} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'requests':>9} {'errors':>6} {'429':>5} {'wrk cpu':>7} {'all cpu':>7}"
    )
    lines = [title, head, "-" * len(head)]
    for row in run["scenarios"].values():
        lines.append(
            f"{row['scenario']:<11} {row['endpoint']:<32} {row['rps']:>9.1f} {_ms(row['p50_ms']):>8} "
            f"{_ms(row['p95_ms']):>8} {_ms(row['p99_ms']):>8} {row['requests']:>9} {row['errors']:>6} "
            f"{row['rate_limited']:>5} {_share(row['wrk_cpu']):>7} {_share(row['machine_cpu']):>7}"
        )
        bad = {k: v for k, v in row["statuses"].items() if not 200 <= int(k) < 300}
        bad.update({k: v for k, v in row["socket_errors"].items() if v})
        if bad:
            lines.append(f"{'':<10} not 2xx: " + ", ".join(f"{k}: {v}" for k, v in bad.items()))
    staged = [row for row in run["scenarios"].values() if row["server_stages"]]
    if staged:
        lines.append("server-side mean ms per stage (recommendation_latency_seconds, from /metrics):")
        for row in staged:
            stages = row["server_stages"]
            keys = [s for s in STAGE_ORDER if s in stages] + sorted(s for s in stages if s not in STAGE_ORDER)
            lines.append(f"  {row['scenario']:<11} " + ", ".join(f"{s} {stages[s]['mean_ms']:.2f}" for s in keys))
    lines.append("targets:")
    for key, label, _, _ in TARGETS:
        t = run["targets"][key]
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"  {label:<31} {value:>9}   target {t['target']:<7} {'pass' if t['met'] else 'FAIL'}")
    for key, label, _ in REFERENCES:
        if key in run["targets"]:
            t = run["targets"][key]
            value = "-" if t["value"] is None else f"{t['value']:.3f}"
            lines.append(f"  {label:<31} {value:>9}   (reference: every reply computed anew)")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """The mean over runs, with the spread (min–max) of each number."""

    def cell(stats: dict[str, float | None], digits: int = 2, unit: str = "f") -> str:
        if stats["mean"] is None:
            return "-"
        return f"{stats['mean']:.{digits}{unit}} ({stats['min']:.{digits}{unit}}–{stats['max']:.{digits}{unit}})"

    n = summary["runs"]
    head = f"{'scenario':<11} {'req/s':>26} {'p50 ms':>20} {'p95 ms':>20} {'p99 ms':>20} {'wrk cpu':>18}"
    lines = [f"mean of {n} runs (min–max)", head, "-" * len(head)]
    for name, s in summary["scenarios"].items():
        lines.append(
            f"{name:<11} {cell(s['rps'], 1):>26} {cell(s['p50_ms']):>20} {cell(s['p95_ms']):>20} "
            f"{cell(s['p99_ms']):>20} {cell(s['wrk_cpu'], 0, '%'):>18}"
        )
    lines.append("targets, on the means:")
    for key, label, _, _ in TARGETS:
        t = summary["targets"][key]
        lines.append(
            f"  {label:<31} {cell(t, 3):>26}   target {t['target']:<7} {'pass' if t['met'] else 'FAIL'}"
            f"   (met in {t['runs_met']} of {n} runs)"
        )
    for key, label, _ in REFERENCES:
        if key in summary["targets"]:
            lines.append(
                f"  {label:<31} {cell(summary['targets'][key], 3):>26}   (reference: every reply computed anew)"
            )
    return "\n".join(lines)

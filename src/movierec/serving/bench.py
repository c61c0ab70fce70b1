"""``movierec bench serve``: the service's speed under load, measured with wrk, on loopback only.

One run drives eight scenarios back to back against a server that is already up, each with
the native load generator `wrk <https://github.com/wg/wrk>`_ (``apt-get install wrk``):

=========== ============================================ =========================================
scenario    request                                      what it measures
=========== ============================================ =========================================
floor       ``GET /api/v1/ping``                         HTTP, routing and JSON, no model
retrieval   ``POST /api/v1/retrieval`` (k=100)           a known user's repeat: the reply cache
retr-fresh  the same, with ``Cache-Control: no-cache``   query tower + index + filters + metadata
ranking     ``POST /api/v1/ranking`` (100 candidates)    query tower + pair features + ranker
chain       ``POST /api/v1/recommendations``             a known user's repeat: the reply cache
            (k=10, candidates=100)
chain-fresh the same, with ``Cache-Control: no-cache``   retrieval of 100, ranking, top 10
similar     ``GET /api/v1/items/{id}/similar`` (k=10)    nearest items in the embedding space
feedback    ``POST /api/v1/feedback`` (a rating)         validation and one SQLite insert
=========== ============================================ =========================================

Each scenario is a warm-up of ``--warmup`` seconds (not measured), then ``--duration``
seconds measured, from ``--threads`` wrk threads holding ``--connections`` keep-alive
connections; each request has ``--timeout`` seconds. wrk runs ``wrk/bench.lua``, which
cycles through the scenario's pre-built requests and, at the end, prints wrk's latency
percentiles, its socket errors and the count of answers by HTTP status as one JSON line.
wrk is killed if it outlives its duration by much, so a run is bounded in time.
``--runs`` repeats the whole sequence (a fresh feedback user range each run).

Workload (:mod:`movierec.serving.bench_workload`): a fixed, seeded pool of 500 users,
90 % known ids drawn from ``1..users`` (as ``/ready`` reports) and 10 % unknown ids above
that range (cold start); ranking candidates, similar-item queries and feedback items are
drawn (seeded) from the top 1000 of ``/api/v1/popular``. Feedback goes to synthetic users
from ``10**18`` up, 20 000 of them per run, so that it never lands in a real user's
history and no user sends more than a few events (a per-user rate limit answers 429;
429s are counted apart from errors).

Reported per scenario: requests/s (2xx answers per second), p50/p95/p99 in milliseconds,
requests answered, errors (answers other than 2xx and 429, plus wrk's connect, read,
write and timeout errors), 429s, wrk's CPU use (its CPU seconds over its wall seconds: 100 %
means wrk itself was the bottleneck) and the whole machine's, and, from the server's
``/metrics`` before and after, the mean server-side milliseconds per stage of
``recommendation_latency_seconds``. Then the targets, all from the same run
(:data:`movierec.serving.bench_report.TARGETS`): chain req/s / floor req/s at least
0.33, retrieval req/s / floor req/s at least 0.5, chain p99 at most 50 ms, floor p99 at
most 20 ms. With several runs, the mean and the spread (min–max) follow.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from movierec.errors import ParamsError
from movierec.serving.bench_report import aggregate, format_run, format_summary, summarize, targets
from movierec.serving.bench_server import API_KEY_ENV, Server, stage_means
from movierec.serving.bench_workload import build_scenarios, describe, user_pool
from movierec.serving.bench_wrk import BenchError, Load, find_wrk, run_wrk, wrk_version

__all__ = ["BenchError", "Options", "check_loopback", "run_bench"]


def check_loopback(url: str) -> str:
    """The base URL without its trailing slash, if it points at a loopback address.

    Accepts ``http``/``https`` URLs whose host is ``localhost``, an IPv4 address in
    127.0.0.0/8 or ``::1`` (an IPv4-mapped ``::ffff:127.x.y.z`` too). Host names other
    than ``localhost`` are refused without resolving them.

    Raises:
        ParamsError: any other URL.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ParamsError(f"--url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ParamsError(
            f"--url {url!r} must be an http:// or https:// URL with a host, for example http://127.0.0.1:8000"
        )
    if parts.query or parts.fragment:
        raise ParamsError(f"--url {url!r} must not have a query or a fragment")
    if not _is_loopback(host):
        raise ParamsError(
            f"--url {url!r}: host {host!r} is not a loopback address; the benchmark only "
            "loads servers on this machine (127.0.0.0/8, ::1 or localhost)"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


class Options:
    """The benchmark's settings, checked: URL, wrk's load per scenario, warm-up, runs, JSON path."""

    def __init__(self, args: Any):
        self.url = check_loopback(str(getattr(args, "url", "http://127.0.0.1:8000")))
        self.load = Load(
            threads=_int(args, "threads", 1, 1, 64),
            connections=_int(args, "connections", 16, 1, 1024),
            seconds=_int(args, "duration", 10, 1, 600),
            timeout=_int(args, "timeout", 5, 1, 60),
        )
        if self.load.threads > self.load.connections:
            raise ParamsError(
                f"--threads ({self.load.threads}) must not exceed --connections ({self.load.connections}): "
                "each wrk thread holds at least one connection"
            )
        self.warmup = _int(args, "warmup", 2, 0, 60)
        self.runs = _int(args, "runs", 1, 1, 20)
        path = getattr(args, "json_path", None)
        self.json_path = Path(path) if path else None
        key = getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or None
        if key is not None and (not key.isprintable() or any(c.isspace() for c in key)):
            raise ParamsError(f"the API key (--api-key or {API_KEY_ENV}) must be printable, without spaces or tabs")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}


def _int(args: Any, name: str, default: int, low: int, high: int) -> int:
    value = getattr(args, name, None)
    value = default if value is None else value
    if (isinstance(value, float) and not value.is_integer()) or not low <= int(value) <= high:
        raise ParamsError(f"--{name} must be a whole number from {low} to {high}, not {value}")
    return int(value)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_once(
    wrk: str, opts: Options, server: Server, users: list[int], popular: list[int], run: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """One pass over the scenarios: warm-up, then the measured load, with /metrics around it."""
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="movierec-bench-") as tmp:
        for scenario in build_scenarios(users, popular, run):
            path = scenario.write(Path(tmp) / f"{scenario.name}.txt", opts.headers)
            log(
                f"  run {run + 1}/{opts.runs}: {scenario.name:<9} {scenario.label} (warm-up {opts.warmup} s, then {opts.load.seconds} s)"
            )
            if opts.warmup:
                run_wrk(
                    wrk, opts.url, path, Load(opts.load.threads, opts.load.connections, opts.warmup, opts.load.timeout)
                )
            before = server.stages() if scenario.endpoint else None
            measured = run_wrk(wrk, opts.url, path, opts.load)
            after = server.stages() if scenario.endpoint else None
            rows[scenario.name] = summarize(
                scenario.name, scenario.label, measured, stage_means(before, after, scenario.endpoint)
            )
    return {"run": run + 1, "scenarios": rows, "targets": targets(rows)}


def run_bench(args: Any, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Benchmark a running server on loopback with wrk; print the tables, write JSON to ``args.json_path``.

    Args:
        args: with ``url``, ``threads``, ``connections``, ``duration`` (seconds per
            scenario), ``warmup`` (seconds), ``timeout`` (seconds per request), ``runs``,
            ``json_path`` (a path, or None) and ``api_key`` (or None: ``$MOVIEREC_BENCH_API_KEY``,
            if set, else no key); missing ones take the defaults.
        log: progress sink (default: stderr).

    Returns:
        The results: each run's scenarios and targets, the summary over runs, the settings.

    Raises:
        ParamsError: a non-loopback URL or an out-of-range setting.
        BenchError: wrk is missing or fails, or the server is down or not ready.
    """
    opts = Options(args)
    log = log or _stderr
    wrk = find_wrk()
    with Server(opts.url, headers=opts.headers) as server:
        ready = server.ready()
        n_users = int(ready.get("users") or 0)
        users = user_pool(n_users)
        popular = server.popular()
        runs = [_run_once(wrk, opts, server, users, popular, run, log) for run in range(opts.runs)]
    results = {
        "url": opts.url,
        "model_version": ready.get("model_version"),
        "items": ready.get("items"),
        "users": n_users,
        "wrk": {
            "version": wrk_version(wrk),
            "threads": opts.load.threads,
            "connections": opts.load.connections,
            "duration_seconds": opts.load.seconds,
            "warmup_seconds": opts.warmup,
            "timeout_seconds": opts.load.timeout,
        },
        "workload": describe(users, n_users, popular),
        "runs": runs,
        "summary": aggregate(runs),
    }
    print(format_report(results), flush=True)
    if opts.json_path:
        from movierec.io import write_json

        write_json(opts.json_path, results)
    return results


def format_report(results: dict[str, Any]) -> str:
    """Everything printed on stdout: the settings, each run, and the mean over runs."""
    w, load = results["workload"], results["wrk"]
    lines = [
        f"bench serve: {results['url']}  model {results['model_version']}  ({results['items']} items, {results['users']} users)",
        f"{load['version'] or 'wrk'}: {load['threads']} thread(s), {load['connections']} connections, "
        f"{load['duration_seconds']} s per scenario after a {load['warmup_seconds']} s warm-up; users {w['known_users']} known + "
        f"{w['cold_users']} unknown, seed {w['seed']}; feedback to synthetic users from {w['feedback_user_ids_from']}",
    ]
    for run in results["runs"]:
        lines += ["", format_run(run, f"run {run['run']} of {len(results['runs'])}")]
    if len(results["runs"]) > 1:
        lines += ["", format_summary(results["summary"])]
    return "\n".join(lines)

"""``movierec bench serve``: a bounded load test of a running server, on loopback only.

The benchmark drives four scenarios, in this order, against a server that is already up:

========== ========================================= ============================================
scenario   request                                   what it measures
========== ========================================= ============================================
ping       ``GET /api/v1/ping``                      the floor: HTTP, routing and JSON, no model
retrieval  ``POST /api/v1/retrieval`` (k=100)        query tower + index + filters + metadata
ranking    ``POST /api/v1/ranking`` (100 candidates) query tower + pair features + ranker
chain      ``POST /api/v1/recommendations``          retrieval of 100 candidates, ranking, top 10
           (k=10, candidates=100)
========== ========================================= ============================================

Each scenario first sends a short warm-up (:data:`WARMUP` requests, not measured), then
exactly ``requests`` requests from ``concurrency`` concurrent workers sharing one
``httpx.AsyncClient`` whose connection pool holds ``concurrency`` keep-alive connections;
it stops early when ``max_seconds`` have passed (requests already in flight finish), so a
run is bounded both in count and in time. Each request's latency (from sending to the
whole body read, on the client) and status are recorded.

Workload. The service has no user-list endpoint, and MovieLens user ids run from 1 to the
number of users, so the users are a fixed, seeded sample (:data:`SEED`) of
:data:`USER_POOL` ids: ``1 - COLD_SHARE`` of them drawn from ``1..users`` (``users`` as
reported by ``/ready``: known users, with their histories) and ``COLD_SHARE`` (10 %)
unknown ids above that range (cold start: retrieval falls back to the popular list, the
chain ranks those, ranking scores with no history). Requests cycle through the pool in a
seeded order. Ranking candidates are 100 distinct items drawn (seeded, per request) from
the top 1000 of ``/api/v1/popular``. Every body is built before the clock starts.

Reported per scenario: requests completed (answered or failed), errors (a status other
than 2xx, or a transport error such as a timeout), p50/p95/p99 latency in milliseconds
over the successful requests, and requests per second (successful requests over the
scenario's wall time). Then the two product targets, both from this same run:
``chain p99 / floor p99`` (at most 2) and ``chain req/s / floor req/s`` (at least 0.5).
When the server exposes ``/metrics``, the chain's mean server-side time per stage
(retrieval, filter, ranking, total) over the measured requests is reported too.

The client runs on the same machine as the server and competes with it for CPU; its own
CPU use per scenario is reported (``client_cpu``: CPU seconds over wall seconds) so a
client-bound floor can be told apart from a server-bound one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from movierec.errors import MovierecError, ParamsError

SEED = 20240601
WARMUP = 50
USER_POOL = 500
COLD_SHARE = 0.10
COLD_OFFSET = 1_000_000  # unknown ids start this far above the known range
RETRIEVAL_K = 100
RANKING_CANDIDATES = 100
CHAIN_K = 10
CHAIN_CANDIDATES = 100
POPULAR_POOL = 1000
TARGET_P99_RATIO = 2.0
TARGET_RPS_RATIO = 0.5
SCENARIOS = ("ping", "retrieval", "ranking", "chain")


class BenchError(MovierecError):
    """The server to benchmark is not reachable, not ready, or answers unexpectedly."""


@dataclass
class Scenario:
    """One endpoint under load: its method, path and the bodies it cycles through."""

    name: str
    method: str
    path: str
    bodies: list[Any] | None  # None: no body (GET)

    @property
    def label(self) -> str:
        """``METHOD /path``, for the table."""
        return f"{self.method} {self.path}"

    def body(self, n: int) -> Any:
        """The ``n``-th request's body (cycling)."""
        return None if self.bodies is None else self.bodies[n % len(self.bodies)]


# --- arguments -----------------------------------------------------------------------------
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


def _settings(args: Any) -> tuple[str, int, int, float]:
    url = check_loopback(str(getattr(args, "url", "http://127.0.0.1:8000")))
    concurrency = int(getattr(args, "concurrency", 16))
    requests = int(getattr(args, "requests", 2000))
    max_seconds = float(getattr(args, "max_seconds", 60.0))
    if not 1 <= concurrency <= 1024:
        raise ParamsError(f"--concurrency must be between 1 and 1024, not {concurrency}")
    if not 1 <= requests <= 10_000_000:
        raise ParamsError(f"--requests must be between 1 and 10000000, not {requests}")
    if not 0 < max_seconds <= 86_400:
        raise ParamsError(f"--max-seconds must be above 0 and at most 86400, not {max_seconds}")
    return url, concurrency, requests, max_seconds


# --- workload ------------------------------------------------------------------------------
def user_pool(n_users: int, size: int = USER_POOL, cold_share: float = COLD_SHARE, seed: int = SEED) -> list[int]:
    """A fixed, seeded mix of known ids (from ``1..n_users``) and unknown ids, in seeded order."""
    rng = random.Random(seed)
    n_cold = max(1, round(size * cold_share)) if cold_share > 0 else 0
    n_known = min(size - n_cold, n_users) if n_users > 0 else 0
    known = rng.sample(range(1, n_users + 1), n_known) if n_known else []
    cold = [n_users + COLD_OFFSET + i for i in range(n_cold)]
    pool = known + cold
    rng.shuffle(pool)
    return pool


def build_scenarios(users: list[int], popular: list[int], count: int, seed: int = SEED) -> list[Scenario]:
    """The four scenarios with ``count`` bodies each (``count`` = warm-up + measured requests)."""
    rng = random.Random(seed + 1)
    n_cand = min(RANKING_CANDIDATES, len(popular))
    size = max(count, 1)
    retrieval = [{"user_id": users[n % len(users)], "k": RETRIEVAL_K} for n in range(size)]
    ranking = [{"user_id": users[n % len(users)], "item_ids": rng.sample(popular, n_cand)} for n in range(size)]
    chain = [{"user_id": users[n % len(users)], "k": CHAIN_K, "candidates": CHAIN_CANDIDATES} for n in range(size)]
    return [
        Scenario("ping", "GET", "/api/v1/ping", None),
        Scenario("retrieval", "POST", "/api/v1/retrieval", retrieval),
        Scenario("ranking", "POST", "/api/v1/ranking", ranking),
        Scenario("chain", "POST", "/api/v1/recommendations", chain),
    ]


# --- load ----------------------------------------------------------------------------------
async def _drive(
    client: Any, scenario: Scenario, start: int, count: int, concurrency: int, max_seconds: float
) -> dict[str, Any]:
    """Send ``count`` requests of ``scenario`` from ``concurrency`` workers; stop at ``max_seconds``."""
    latencies: list[float] = []
    statuses: list[int] = []  # 0: transport error
    errors: dict[str, int] = {}
    issued = 0
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    stopped_early = False

    async def worker() -> None:
        nonlocal issued, stopped_early
        while issued < count:
            if time.perf_counter() >= deadline:
                stopped_early = True
                return
            n = start + issued
            issued += 1
            body = scenario.body(n)
            began = time.perf_counter()
            try:
                if body is None:
                    response = await client.request(scenario.method, scenario.path)
                else:
                    response = await client.request(scenario.method, scenario.path, json=body)
                status = response.status_code
                if not 200 <= status < 300:
                    key = str(status)
                    errors[key] = errors.get(key, 0) + 1
            except Exception as exc:  # every failure is counted, the load goes on
                status = 0
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
            latencies.append(time.perf_counter() - began)
            statuses.append(status)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {
        "latencies": latencies,
        "statuses": statuses,
        "errors": errors,
        "wall": wall,
        "cpu": cpu,
        "stopped_early": stopped_early and issued < count,
    }


def summarize(name: str, label: str, run: dict[str, Any], requested: int) -> dict[str, Any]:
    """Counts, percentiles (ms, over successful requests) and throughput of one scenario."""
    lat = np.asarray(run["latencies"], float)
    ok = np.asarray([200 <= s < 300 for s in run["statuses"]], bool)
    good = lat[ok] * 1000.0 if lat.size else lat
    wall = max(run["wall"], 1e-9)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(good, q)), 3) if good.size else None

    return {
        "scenario": name,
        "endpoint": label,
        "requested": requested,
        "completed": int(lat.size),
        "ok": int(ok.sum()),
        "errors": int(lat.size - ok.sum()),
        "error_kinds": dict(run["errors"]),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(float(good.mean()), 3) if good.size else None,
        "max_ms": round(float(good.max()), 3) if good.size else None,
        "rps": round(float(ok.sum()) / wall, 2),
        "wall_seconds": round(wall, 3),
        "client_cpu": round(run["cpu"] / wall, 3),
        "stopped_early": bool(run["stopped_early"]),
    }


def targets(scenarios: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The product targets from this run: chain p99 / floor p99 and chain req/s / floor req/s."""
    floor, chain = scenarios.get("ping"), scenarios.get("chain")
    p99_ratio = rps_ratio = None
    if floor and chain and floor["p99_ms"] and chain["p99_ms"] is not None:
        p99_ratio = round(chain["p99_ms"] / floor["p99_ms"], 3)
    if floor and chain and floor["rps"] > 0:
        rps_ratio = round(chain["rps"] / floor["rps"], 3)
    return {
        "chain_p99_over_floor_p99": {
            "value": p99_ratio,
            "target": f"<= {TARGET_P99_RATIO:g}",
            "met": p99_ratio is not None and p99_ratio <= TARGET_P99_RATIO,
        },
        "chain_rps_over_floor_rps": {
            "value": rps_ratio,
            "target": f">= {TARGET_RPS_RATIO:g}",
            "met": rps_ratio is not None and rps_ratio >= TARGET_RPS_RATIO,
        },
    }


# --- server-side stages from /metrics ------------------------------------------------------
_METRIC = re.compile(r"^recommendation_latency_seconds_(sum|count)\{([^}]*)\}\s+(\S+)")


def parse_stage_metrics(text: str, endpoint: str) -> dict[str, tuple[float, float]]:
    """``{stage: (sum_seconds, count)}`` of ``recommendation_latency_seconds`` for one endpoint."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
        if labels.get("endpoint") != endpoint or "stage" not in labels:
            continue
        slot = out.setdefault(labels["stage"], [0.0, 0.0])
        slot[0 if match.group(1) == "sum" else 1] += float(match.group(3))
    return {stage: (s, c) for stage, (s, c) in out.items()}


async def _stages(client: Any, endpoint: str) -> dict[str, tuple[float, float]] | None:
    try:
        response = await client.get("/metrics")
    except Exception:  # the stage breakdown is optional
        return None
    return parse_stage_metrics(response.text, endpoint) if response.status_code == 200 else None


def stage_means(
    before: dict[str, tuple[float, float]] | None, after: dict[str, tuple[float, float]] | None
) -> dict[str, dict[str, float]] | None:
    """Mean server-side milliseconds per stage between two ``/metrics`` snapshots."""
    if before is None or after is None:
        return None
    out = {}
    for stage, (s1, c1) in after.items():
        s0, c0 = before.get(stage, (0.0, 0.0))
        if c1 - c0 > 0:
            out[stage] = {"mean_ms": round((s1 - s0) / (c1 - c0) * 1000.0, 3), "count": int(c1 - c0)}
    return out or None


# --- the run -------------------------------------------------------------------------------
async def _check_ready(client: Any, url: str) -> dict[str, Any]:
    import httpx

    try:
        response = await client.get("/ready")
    except httpx.HTTPError as exc:
        raise BenchError(
            f"no server answers at {url} ({type(exc).__name__}: {exc or 'no detail'}); "
            f"start it first, e.g. `movierec serve --port {urlsplit(url).port or 80}`"
        ) from None
    try:
        ready = response.json()
    except ValueError:
        ready = {}
    if response.status_code != 200 or not ready.get("ready"):
        reason = ready.get("reason") if isinstance(ready, dict) else None
        raise BenchError(
            f"the server at {url} is not ready (GET /ready: HTTP {response.status_code}"
            f"{', ' + str(reason) if reason else ''}); wait for the bundle to load"
        )
    return ready


async def _popular(client: Any, url: str) -> list[int]:
    response = await client.get("/api/v1/popular", params={"k": POPULAR_POOL})
    if response.status_code != 200:
        raise BenchError(f"GET {url}/api/v1/popular?k={POPULAR_POOL} answered HTTP {response.status_code}")
    items = [int(item["item_id"]) for item in response.json()["items"]]
    if not items:
        raise BenchError(f"GET {url}/api/v1/popular returned no items; the catalogue is empty")
    return list(dict.fromkeys(items))


async def _run(url: str, concurrency: int, requests: int, max_seconds: float, warmup: int, log: Any) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(max(1.0, min(30.0, max_seconds)))
    # trust_env=False: never route loopback traffic through a proxy from the environment
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, trust_env=False) as client:
        ready = await _check_ready(client, url)
        users = user_pool(int(ready.get("users") or 0))
        popular = await _popular(client, url)
        scenarios = build_scenarios(users, popular, warmup + requests)
        results: dict[str, dict[str, Any]] = {}
        stages = None
        for scenario in scenarios:
            log(f"  {scenario.name:<10} {scenario.label}: warm-up {warmup}, then {requests} requests ...")
            if warmup:
                await _drive(client, scenario, 0, warmup, concurrency, max_seconds)
            before = await _stages(client, "recommendations") if scenario.name == "chain" else None
            run = await _drive(client, scenario, warmup, requests, concurrency, max_seconds)
            results[scenario.name] = summarize(scenario.name, scenario.label, run, requests)
            if scenario.name == "chain":
                stages = stage_means(before, await _stages(client, "recommendations"))
    n_cold = sum(1 for u in users if u > int(ready.get("users") or 0))
    return {
        "url": url,
        "model_version": ready.get("model_version"),
        "items": ready.get("items"),
        "users": ready.get("users"),
        "concurrency": concurrency,
        "requests": requests,
        "max_seconds": max_seconds,
        "warmup": warmup,
        "workload": {
            "seed": SEED,
            "user_pool": len(users),
            "known_users": len(users) - n_cold,
            "cold_users": n_cold,
            "cold_user_ids_from": int(ready.get("users") or 0) + COLD_OFFSET,
            "retrieval_k": RETRIEVAL_K,
            "ranking_candidates": min(RANKING_CANDIDATES, len(popular)),
            "ranking_candidate_pool": f"top {len(popular)} of /api/v1/popular",
            "chain_k": CHAIN_K,
            "chain_candidates": CHAIN_CANDIDATES,
        },
        "scenarios": results,
        "targets": targets(results),
        "chain_server_stages": stages,
    }


def format_report(results: dict[str, Any]) -> str:
    """The table printed on stdout."""
    w = results["workload"]
    lines = [
        f"bench serve: {results['url']}  model {results['model_version']}  "
        f"({results['items']} items, {results['users']} users)",
        f"concurrency {results['concurrency']}, {results['requests']} requests per scenario "
        f"(max {results['max_seconds']:g} s), warm-up {results['warmup']}; users: {w['known_users']} known + "
        f"{w['cold_users']} unknown (cold start), seed {w['seed']}",
        "",
    ]
    head = (
        f"{'scenario':<10} {'endpoint':<29} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'req/s':>8} {'client cpu':>10}"
    )
    lines += [head, "-" * len(head)]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for row in results["scenarios"].values():
        note = "  (time limit)" if row["stopped_early"] else ""
        lines.append(
            f"{row['scenario']:<10} {row['endpoint']:<29} {row['completed']:>8} {row['errors']:>6} "
            f"{ms(row['p50_ms']):>8} {ms(row['p95_ms']):>8} {ms(row['p99_ms']):>8} "
            f"{row['rps']:>8.1f} {row['client_cpu']:>10.0%}{note}"
        )
        if row["error_kinds"]:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(row["error_kinds"].items()))
            lines.append(f"{'':<10} errors by kind: {kinds}")
    lines.append("")
    names = {
        "chain_p99_over_floor_p99": "chain p99 / floor p99",
        "chain_rps_over_floor_rps": "chain req/s / floor req/s",
    }
    for key, label in names.items():
        t = results["targets"][key]
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"{label:<26} {value:>8}   target {t['target']:<6} {'met' if t['met'] else 'NOT met'}")
    stages = results.get("chain_server_stages")
    if stages:
        order = ["retrieval", "filter", "ranking", "total"]
        keys = [s for s in order if s in stages] + sorted(s for s in stages if s not in order)
        lines.append(
            "chain, mean server-side ms per stage (from /metrics): "
            + ", ".join(f"{s} {stages[s]['mean_ms']:.2f}" for s in keys)
        )
    return "\n".join(lines)


def run_bench(args: Any, warmup: int = WARMUP, log: Any = None) -> dict[str, Any]:
    """Benchmark a running server on loopback; print the table, write JSON to ``args.out``.

    Args:
        args: with ``url``, ``concurrency``, ``requests``, ``max_seconds`` and ``out``
            (a path, or None).
        warmup: unmeasured requests per scenario before the measured ones.
        log: progress sink (default: stderr).

    Returns:
        The results: per-scenario counts, percentiles and throughput, the targets, the workload.

    Raises:
        ParamsError: a non-loopback URL or an out-of-range setting.
        BenchError: the server is down, not ready, or cannot list popular items.
    """
    import sys

    url, concurrency, requests, max_seconds = _settings(args)
    if log is None:

        def log(message: str) -> None:
            print(message, file=sys.stderr, flush=True)

    results = asyncio.run(_run(url, concurrency, requests, max_seconds, max(0, int(warmup)), log))
    print(format_report(results), flush=True)
    out = getattr(args, "out", None)
    if out:
        from movierec.io import write_json

        write_json(out, results)
    return results

"""What one request costs inside the service, without HTTP: ``python -m movierec.serving.bench_inprocess``.

``movierec bench serve`` measures the service as clients see it, through uvicorn and
the network stack, where a change of a few microseconds per request drowns in the
noise of two processes sharing two cores. This tool calls the ASGI application directly
on one event loop, with the same bundle, database and middleware as ``movierec serve``
(one worker), and reports the microseconds of wall and CPU time per request for the
floor (``GET /api/v1/ping``), cached and fresh retrieval (k = 100) and the cached and
fresh chain (k = 10 from 100 candidates), cycling through the wrk benchmark's own seeded
user pool (:func:`~movierec.serving.bench_workload.user_pool`). ``--profile DIR`` also writes one cProfile file per scenario (read
them with ``python -m pstats`` or snakeviz).

Use it to see what a change to the request path buys before running the wrk benchmark;
the two measure different things, so compare this tool's numbers only with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from movierec.models.layout import MANIFEST

SCENARIOS = ("ping", "retrieval", "retrieval-fresh", "chain", "chain-fresh")


def _scope(method: str, path: str, body: bytes, fresh: bool) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    if fresh:
        headers.append((b"cache-control", b"no-cache"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(app: Any, request: tuple[str, str, bytes, bool]) -> int:
    method, path, body, fresh = request
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(_scope(method, path, body, fresh), receive, send)
    return status[0]


def _requests(name: str, users: list[int]) -> list[tuple[str, str, bytes, bool]]:
    fresh = name.endswith("-fresh")
    if name == "ping":
        return [("GET", "/api/v1/ping", b"", False)]
    if name.startswith("retrieval"):
        return [("POST", "/api/v1/retrieval", json.dumps({"user_id": u, "k": 100}).encode(), fresh) for u in users]
    body = [{"user_id": u, "k": 10, "candidates": 100} for u in users]
    return [("POST", "/api/v1/recommendations", json.dumps(b).encode(), fresh) for b in body]


async def _measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from movierec.serving.app import create_app
    from movierec.serving.bench_workload import user_pool

    app = create_app()
    results: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        n_users = app.state.service.recommender.n_users
        users = user_pool(n_users) if args.seed is None else user_pool(n_users, seed=args.seed)
        for name in args.scenarios:
            requests = _requests(name, users)
            for i in range(args.warmup):  # fills the reply cache, as wrk's warm-up does
                status = await _call(app, requests[i % len(requests)])
                if status != 200:
                    raise SystemExit(f"error: {name} answered {status} during the warm-up")
            profiler = cProfile.Profile() if args.profile else None
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            for i in range(args.requests):
                await _call(app, requests[i % len(requests)])
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[name] = {"wall_us": wall / args.requests * 1e6, "cpu_us": cpu / args.requests * 1e6}
            if profiler:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(args.profile / f"{name}.prof")
            print(
                f"{name:16s} {results[name]['wall_us']:8.1f} us wall {results[name]['cpu_us']:8.1f} us CPU", flush=True
            )
    return results


def parser() -> argparse.ArgumentParser:
    """The command line (``--help`` explains each option)."""
    p = argparse.ArgumentParser(
        prog="python -m movierec.serving.bench_inprocess",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--bundle", type=Path, required=True, help="the bundle folder to serve (e.g. checkpoints)")
    p.add_argument("--requests", type=int, default=5000, help="measured requests per scenario (default 5000)")
    p.add_argument("--warmup", type=int, default=600, help="requests before measuring (default 600)")
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="what to measure")
    p.add_argument("--seed", type=int, default=None, help="seed of the user pool (default: the wrk benchmark's)")
    p.add_argument("--profile", type=Path, default=None, help="write DIR/SCENARIO.prof (cProfile) for each scenario")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Measure, print one line per scenario, and return the numbers."""
    args = parser().parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        raise SystemExit("error: --requests must be at least 1 and --warmup at least 0")
    if not (args.bundle / MANIFEST).is_file():
        raise SystemExit(f"error: {args.bundle} is not a bundle folder (no {MANIFEST})")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported (TFRS needs it)
    work = Path(tempfile.mkdtemp(prefix="movierec-inprocess-"))
    os.environ["MOVIEREC_BUNDLE_DIR"] = str(args.bundle)
    os.environ["MOVIEREC_DATABASE_PATH"] = str(work / "service.sqlite")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(work / "metrics"))
    (work / "metrics").mkdir(exist_ok=True)
    results = asyncio.run(_measure(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

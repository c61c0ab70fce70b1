"""The ``movierec bench bundle`` command: an enlarged bundle written, then served and measured.

``--serve`` starts the real service (``movierec serve``, ``--workers`` processes, on a free
loopback port, its database in a temporary folder) on the enlarged bundle and reports what a
deployment sees: seconds from start to ``/ready`` (the bundle's load, its smoke test and the
process start), the load time the service reports, each worker's resident memory (now and at
its peak), the index ``auto`` chose, and the latency of fresh (uncached) recommendation and
retrieval requests for known users, asked one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from movierec.errors import DataError
from movierec.models.index_bench_cli import parse_count
from movierec.models.layout import INDEX_REPORT, MANIFEST, RETRIEVAL

READY_TIMEOUT_SECONDS = 1800.0
FRESH = {"Cache-Control": "no-cache"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options."""
    p.add_argument("--source", default="checkpoints", help="the trained bundle to enlarge (default: %(default)s)")
    p.add_argument(
        "--items", default="1m", help="items in the enlarged catalogue (k and m suffixes; default: %(default)s)"
    )
    p.add_argument("--out", required=True, help="the enlarged bundle's folder (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic items (default: %(default)s)")
    p.add_argument("--reuse", action="store_true", help="measure --out as it is, if it exists, instead of rewriting it")
    p.add_argument(
        "--serve", action="store_true", help="then start the service on it and measure load, memory, latency"
    )
    p.add_argument(
        "--workers", type=int, default=2, help="service worker processes with --serve (default: %(default)s)"
    )
    p.add_argument("--requests", type=int, default=200, help="fresh requests per endpoint with --serve")
    p.add_argument(
        "--smoke", action="store_true", help="load it in this process and time the service's load-time smoke test"
    )
    p.add_argument("--json", dest="json_path", metavar="PATH", help="write the report as JSON here")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux ``/proc``)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return out


def workers_of(pid: int) -> list[int]:
    """The processes that serve: uvicorn's spawned workers, or the server itself with one worker
    (multiprocessing's resource tracker is left out)."""
    spawned = []
    for child in process_tree(pid)[1:]:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "resource_tracker" not in command:
                spawned.append(child)
    return spawned or [pid]


def memory_of(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in bytes (empty when it is gone)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[{"VmRSS": "rss_bytes", "VmHWM": "peak_rss_bytes"}[key]] = int(line.split()[1]) * 1024
    return out


def _latencies(client: Any, path: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p99 milliseconds of ``bodies`` posted one at a time (fresh replies), and the index used."""
    import numpy as np

    seconds, indexes = [], set()
    for body in bodies:
        start = time.perf_counter()
        response = client.post(path, json=body, headers=FRESH)
        seconds.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise DataError(f"POST {path} answered HTTP {response.status_code}: {response.text[:200]}")
        indexes.add(response.json().get("index"))
    ms = np.asarray(seconds) * 1000
    return {
        "requests": len(bodies),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "indexes": sorted(i for i in indexes if i),
    }


def known_users(bundle: Path, n: int, seed: int) -> list[int]:
    """``n`` seeded users with events in the bundle's ranking context."""
    import numpy as np

    from movierec.models.layout import CONTEXT_ARRAYS, BundleLayout

    with np.load(BundleLayout(bundle).ranking / CONTEXT_ARRAYS) as data:
        users = data["history_users"]
    return np.random.default_rng(seed).choice(users, size=min(n, users.size), replace=False).tolist()


def measure_service(bundle: Path, workers: int, requests: int) -> dict[str, Any]:
    """Start ``movierec serve`` on ``bundle``, wait for ``/ready``, measure, stop it."""
    import httpx

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="movierec-bench-bundle-") as tmp:
        env = {
            **os.environ,
            "MOVIEREC_BUNDLE_DIR": str(Path(bundle).resolve()),
            "MOVIEREC_DATABASE_PATH": str(Path(tmp) / "serve.sqlite"),
            "MOVIEREC_MODEL_URI": "",
        }
        command = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", str(workers)]
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed below, after the server stops
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0, trust_env=False)
            ready = _wait_ready(client, server, Path(tmp) / "server.log")
            to_ready = time.perf_counter() - started
            pids = workers_of(server.pid)
            memory_at_ready = {str(p): memory_of(p) for p in pids}
            users = known_users(bundle, max(1, min(requests, 100)), seed=0)
            bodies = [{"user_id": int(users[i % len(users)])} for i in range(requests)]
            chain = _latencies(client, "/api/v1/recommendations", bodies)
            retrieval = _latencies(client, "/api/v1/retrieval", bodies)
            memory_after = {str(p): memory_of(p) for p in pids}
            client.close()
        finally:
            _stop(server)
            log.close()
    return {
        "workers": workers,
        "seconds_to_ready": round(to_ready, 2),
        "ready": ready,
        "memory_at_ready": memory_at_ready,
        "memory_after_requests": memory_after,
        "chain": chain,
        "retrieval": retrieval,
    }


def _wait_ready(client: Any, server: subprocess.Popen, log: Path) -> dict[str, Any]:
    """``/ready``'s answer once it is 200; raises DataError if the server dies or takes too long."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise DataError(f"the service exited with status {server.returncode} before it was ready:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            response = client.get("/ready")
            if response.status_code == 200:
                return response.json()
        time.sleep(0.5)
    raise DataError(f"the service was not ready after {READY_TIMEOUT_SECONDS:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn stops its workers), SIGKILL if it hangs."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def time_smoke_test(bundle: Path) -> dict[str, Any]:
    """Load ``bundle`` as a service worker does and time its smoke test (and the overlaps it checks)."""
    from movierec.serving.service import Recommender
    from movierec.serving.smoke import index_overlaps, sample_users, smoke_test

    rec = Recommender(bundle)
    start = time.perf_counter()
    smoke_test(rec)
    seconds = time.perf_counter() - start
    overlaps = index_overlaps(rec, sample_users(rec))
    return {
        "load_seconds": round(rec.load_seconds, 2),
        "seconds": round(seconds, 3),
        "overlaps": {k: round(v, 3) for k, v in overlaps.items()},
    }


def _gib(value: int | None) -> str:
    return f"{(value or 0) / 2**30:.2f} GiB"


def bench_bundle(args: argparse.Namespace, index: dict[str, Any]) -> dict[str, Any]:
    """Write the enlarged bundle (unless ``--reuse`` finds it), then measure it if ``--serve``.

    Returns:
        The report written to ``--json``.
    """
    from movierec.io import read_json, write_json
    from movierec.models.bundle import check_manifest
    from movierec.models.index_bundle import SYNTHETIC_TAG, enlarge_bundle

    try:
        n_items = parse_count(args.items)
    except ValueError:
        raise DataError(f"--items must be a count like 1m, got {args.items!r}") from None
    out = Path(args.out)
    report: dict[str, Any] = {"bundle": str(out), "items": n_items}
    if args.reuse and (out / MANIFEST).exists():
        start = time.perf_counter()
        manifest = check_manifest(out)
        report["manifest_check_seconds"] = round(time.perf_counter() - start, 2)
        report["index"] = read_json(out / RETRIEVAL / INDEX_REPORT)
        print(f"reusing {out} ({manifest.get(SYNTHETIC_TAG, {}).get('items', '?')} items)")
    else:
        built = enlarge_bundle(Path(args.source), out, n_items, index, seed=args.seed)
        report.update(build_seconds=built["seconds"], index=built["index"], version=built["manifest"]["version"])
        manifest = built["manifest"]
        print(
            f"wrote {out}: {n_items:,} items ({manifest[SYNTHETIC_TAG]['synthetic_items']:,} SYNTHETIC), "
            f"version {manifest['version']}, in {sum(built['seconds'].values()):.0f} s"
        )
    summary = report["index"]
    print(
        f"indexes: auto serves {summary.get('auto')}; FAISS nlist {summary['faiss']['nlist']} nprobe "
        f"{summary['faiss']['nprobe']}, ScaNN {summary['scann']['num_leaves']} leaves "
        f"({summary['scann']['num_leaves_to_search']} searched); recall@{summary['k']}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in summary["recall"].items())
    )
    if args.smoke:
        report["smoke"] = time_smoke_test(out)
        smoke = report["smoke"]
        print(
            f"smoke test: {smoke['seconds']:.2f} s after a {smoke['load_seconds']:.1f} s load; top-10 overlap with "
            "brute force " + ", ".join(f"{k} {v:.2f}" for k, v in smoke["overlaps"].items())
        )
    if args.serve:
        served = measure_service(out, args.workers, args.requests)
        report["service"] = served
        print(
            f"service ({served['workers']} workers): ready in {served['seconds_to_ready']:.1f} s (bundle load "
            f"{served['ready'].get('load_seconds')} s per worker), serving {served['ready'].get('items'):,} items"
        )
        for pid, memory in served["memory_after_requests"].items():
            print(f"  worker {pid}: RSS {_gib(memory.get('rss_bytes'))}, peak {_gib(memory.get('peak_rss_bytes'))}")
        for name in ("chain", "retrieval"):
            row = served[name]
            print(
                f"  {name}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms over {row['requests']} fresh requests "
                f"(index {', '.join(row['indexes'])})"
            )
    if args.json_path:
        write_json(args.json_path, report)
        print(f"wrote {args.json_path}")
    return report

"""``movierec bench serve``: settings, workload, wrk's output, the numbers and targets, and real runs.

The unit tests need neither wrk nor a model. The integration tests run the real wrk: once
against a tiny stand-in server (standard library, in a thread) that checks the requests
and answers some with 429 and 500, and once against the real service (uvicorn, the tiny
bundle). wrk is required there: without it they fail and say how to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from argparse import Namespace
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from bundle_fixture import TinyProject, free_port, stop_process_group, wait_until

from movierec.errors import MovierecError, ParamsError
from movierec.serving import bench, bench_report, bench_server, bench_workload, bench_wrk

N_USERS = 40
N_ITEMS = 300
SCENARIOS = ["floor", "retrieval", "retr-fresh", "ranking", "chain", "chain-fresh", "similar", "feedback"]


def quiet(_: str) -> None:
    pass


def options(url: str, **overrides: Any) -> Namespace:
    values = dict(
        url=url, threads=1, connections=2, duration=1, warmup=0, timeout=5, runs=1, json_path=None, api_key=None
    )
    return Namespace(**{**values, **overrides})


def require_wrk() -> str:
    path = shutil.which("wrk")
    assert path, "wrk is not installed: `apt-get install wrk` or `make system-deps` (CI installs it)"
    return path


# --- a stand-in server -------------------------------------------------------------------
class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ready: bool = True, fail: str | None = None, limit_every: int = 0, key: str | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ready, self.fail, self.limit_every, self.key = ready, fail, limit_every, key
        self.lock = threading.Lock()
        self.seen: dict[str, list[Any]] = {}
        self.chain_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server
    server: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refused(self) -> bool:
        """401 for an API request without the server's key (when it has one)."""
        key = self.server.key
        if key is None or not self.path.startswith("/api/") or self.headers.get("Authorization") == f"Bearer {key}":
            return False
        self._reply(401, {"detail": "missing or unknown API key"})
        return True

    def do_GET(self) -> None:
        parts, srv = urlsplit(self.path), self.server
        if self._refused():
            return
        if parts.path == "/ready":
            if srv.ready:
                self._reply(200, {"ready": True, "model_version": "fake", "items": N_ITEMS, "users": N_USERS})
            else:
                self._reply(503, {"ready": False, "reason": "starting"})
        elif parts.path == "/api/v1/popular":
            k = int(parse_qs(parts.query)["k"][0])
            self._reply(200, {"items": [{"item_id": i, "score": 1.0} for i in range(1, min(k, N_ITEMS) + 1)]})
        elif parts.path == "/metrics":
            with srv.lock:
                n, total = len(srv.seen.get("/api/v1/recommendations", [])), srv.chain_seconds
            self._reply(
                200,
                f'recommendation_latency_seconds_sum{{endpoint="recommendations",stage="total"}} {total}\n'
                f'recommendation_latency_seconds_count{{endpoint="recommendations",stage="total"}} {n}\n',
                "text/plain",
            )
        elif parts.path == "/api/v1/ping" or re.fullmatch(r"/api/v1/items/\d+/similar", parts.path):
            self._record(parts.path if "similar" not in parts.path else "similar", self.path)
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self._refused():
            self._record(self.path, json.loads(body))

    def _record(self, key: str, body: Any) -> None:
        srv = self.server
        with srv.lock:
            srv.seen.setdefault(key, []).append(body)
            n = len(srv.seen[key])
            if key == "/api/v1/recommendations":
                srv.chain_seconds += 0.002
        if key == srv.fail:
            self._reply(500, {"detail": "boom"})
        elif key == "/api/v1/feedback" and srv.limit_every and n % srv.limit_every == 0:
            self._reply(429, {"detail": "slow down"})
        else:
            self._reply(201 if key == "/api/v1/feedback" else 200, {"items": []})


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[FakeServer] = []

    def start(**kwargs: Any) -> FakeServer:
        server = FakeServer(**kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


# --- settings and errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://example.com:8000",
        "http://0.0.0.0:8000",
        "http://[2001:db8::1]:80",
        "http://127.0.0.1.nip.io",
        "ftp://127.0.0.1",
        "127.0.0.1:8000",
        "http://127.0.0.1:8000/?x=1",
    ],
)
def test_refuses_anything_but_loopback(url: str) -> None:
    with pytest.raises(ParamsError):
        bench.check_loopback(url)
    with pytest.raises(ParamsError):  # before wrk is looked for or any request is sent
        bench.run_bench(options(url), log=quiet)


@pytest.mark.parametrize(
    "url, base",
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.9.9.9", "http://127.9.9.9"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://localhost:1", "http://localhost:1"),
    ],
)
def test_accepts_loopback(url: str, base: str) -> None:
    assert bench.check_loopback(url) == base


@pytest.mark.parametrize(
    "field, value",
    [("connections", 0), ("duration", 0), ("duration", 0.5), ("runs", 0), ("runs", 21), ("warmup", -1), ("threads", 3)],
)
def test_refuses_bad_settings(field: str, value: Any) -> None:
    with pytest.raises(ParamsError, match=f"--{field}"):
        bench.run_bench(options("http://127.0.0.1:1", **{field: value}), log=quiet)


def test_defaults() -> None:
    from movierec.cli import build_parser

    args = build_parser().parse_args(["bench", "serve"])
    opts = bench.Options(args)
    assert (opts.load.threads, opts.load.connections, opts.load.seconds, opts.warmup, opts.runs) == (1, 16, 10, 2, 1)
    assert opts.url == "http://127.0.0.1:8000" and opts.json_path is None
    args = build_parser().parse_args(["bench", "serve", "--runs", "3", "--json", "b.json"])
    assert bench.Options(args).runs == 3 and str(bench.Options(args).json_path) == "b.json"


def test_missing_wrk_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(bench.BenchError, match=r"wrk is not installed.*apt-get install wrk.*make system-deps") as info:
        bench.run_bench(options("http://127.0.0.1:1"), log=quiet)
    assert isinstance(info.value, MovierecError)  # the CLI prints it as one line, exit 2


def test_server_down_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "find_wrk", lambda: "/nonexistent/wrk")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(bench.BenchError, match="no server answers.*movierec serve"):
        bench.run_bench(options(f"http://127.0.0.1:{port}"), log=quiet)


def test_not_ready_is_a_clear_error(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "find_wrk", lambda: "/nonexistent/wrk")
    server = serve(ready=False)
    with pytest.raises(bench.BenchError, match="not ready.*503.*starting"):
        bench.run_bench(options(server.url), log=quiet)
    assert not server.seen  # no load on a server that is not ready


def test_a_server_that_wants_a_key_is_a_clear_error(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "find_wrk", lambda: "/nonexistent/wrk")
    monkeypatch.delenv("MOVIEREC_BENCH_API_KEY", raising=False)
    server = serve(key="s3cret")
    with pytest.raises(bench.BenchError, match="401.*API key.*MOVIEREC_BENCH_API_KEY"):
        bench.run_bench(options(server.url), log=quiet)


def test_the_key_comes_from_the_environment_or_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_BENCH_API_KEY", "from-env")
    assert bench.Options(options("http://127.0.0.1:1")).headers == {"Authorization": "Bearer from-env"}
    assert bench.Options(options("http://127.0.0.1:1", api_key="given")).headers == {"Authorization": "Bearer given"}
    with pytest.raises(ParamsError, match="API key"):
        bench.Options(options("http://127.0.0.1:1", api_key="two\tparts"))
    monkeypatch.delenv("MOVIEREC_BENCH_API_KEY")
    assert bench.Options(options("http://127.0.0.1:1")).headers == {}


# --- workload ------------------------------------------------------------------------------
def test_user_pool_is_seeded_and_mixed() -> None:
    pool = bench_workload.user_pool(943)
    assert pool == bench_workload.user_pool(943) and len(pool) == len(set(pool)) == bench_workload.USER_POOL
    cold = [u for u in pool if u > 943]
    assert len(cold) == round(bench_workload.USER_POOL * bench_workload.COLD_SHARE)
    assert all(1 <= u <= 943 for u in pool if u not in cold)


def test_scenarios_and_their_requests(tmp_path: Path) -> None:
    users = bench_workload.user_pool(N_USERS)
    popular = list(range(1, N_ITEMS + 1))
    scenarios = bench_workload.build_scenarios(users, popular, run=1)
    assert [s.name for s in scenarios] == SCENARIOS
    by = {s.name: s for s in scenarios}
    assert by["floor"].requests == (("GET", "/api/v1/ping", ""),)
    bodies = {name: [json.loads(b) for _, _, b in by[name].requests] for name in ("retrieval", "ranking", "chain")}
    assert all(b == {"user_id": b["user_id"], "k": 100} for b in bodies["retrieval"])
    assert all(len(b["item_ids"]) == 100 == len(set(b["item_ids"])) for b in bodies["ranking"])
    assert all(b["k"] == 10 and b["candidates"] == 100 for b in bodies["chain"])
    assert {b["user_id"] for b in bodies["retrieval"]} == set(users)  # every pooled user, known and unknown
    assert all(re.fullmatch(r"/api/v1/items/\d+/similar\?k=10", p) for _, p, _ in by["similar"].requests)

    feedback = [json.loads(b) for _, _, b in by["feedback"].requests]
    ids = [b["user_id"] for b in feedback]
    assert len(set(ids)) == len(ids) == bench_workload.FEEDBACK_USERS  # spread: one event per synthetic user
    assert min(ids) >= bench_workload.FEEDBACK_USER_BASE and not set(ids) & set(users)
    assert not set(ids) & set(bench_workload.feedback_users(0))  # a fresh range each run
    assert all(b["event"] == "rating" and 0.5 <= b["rating"] <= 5 and b["item_id"] in popular for b in feedback)

    written = by["ranking"].write(tmp_path / "ranking.txt", {"Authorization": "Bearer k"})
    assert written.stat().st_mode & 0o077 == 0  # it may hold a key: the owner's only
    lines = written.read_text().splitlines()
    assert lines[0] == "HEADER\tAuthorization\tBearer k" and len(lines) == 1 + bench_workload.BODIES
    method, path, body = lines[1].split("\t")
    assert (method, path, json.loads(body)) == ("POST", "/api/v1/ranking", bodies["ranking"][0])

    # the fresh scenarios repeat their namesakes' requests, asking for replies computed anew
    for fresh, same in (("retr-fresh", "retrieval"), ("chain-fresh", "chain")):
        assert by[fresh].requests == by[same].requests and by[fresh].endpoint == by[same].endpoint
        lines = by[fresh].write(tmp_path / f"{fresh}.txt", {"Authorization": "Bearer k"}).read_text().splitlines()
        assert lines[:2] == ["HEADER\tAuthorization\tBearer k", "HEADER\tCache-Control\tno-cache"]
        assert not any("Cache-Control" in line for line in written.read_text().splitlines())


# --- wrk's output and the numbers ---------------------------------------------------------
WRK_STDOUT = """Running 1s test @ http://127.0.0.1:1
  1 threads and 2 connections
  104 requests in 1.00s, 10.00KB read
MOVIEREC_WRK {"requests": 104, "duration_us": 2000000, "bytes": 10240, "errors": {"connect": 0, "read": 1, "write": 0, \
"status": 10, "timeout": 2}, "latency_us": {"min": 100.0, "mean": 2500.0, "stdev": 10.0, "max": 90000.0, "percentiles": \
{"50": 2000.0, "90": 5000.0, "95": 6000.0, "99": 12500.0, "99.9": 80000.0}}, "statuses": {"201": 90, "429": 7, "503": 3, "200": 4}}
"""


def test_parse_wrk_output() -> None:
    result = bench_wrk.parse_output(WRK_STDOUT)
    assert result["requests"] == 104 and result["statuses"] == {201: 90, 429: 7, 503: 3, 200: 4}
    with pytest.raises(bench.BenchError, match="status 1.*unable to connect"):
        bench_wrk.parse_output("Running 1s test\n", "unable to connect to 127.0.0.1:1 Connection refused", 1)


def test_a_row_counts_errors_and_429_apart() -> None:
    wrk = {**bench_wrk.parse_output(WRK_STDOUT), "wrk_cpu_seconds": 0.5, "wrk_wall_seconds": 2.0, "machine_cpu": 0.9}
    row = bench_report.summarize("feedback", "POST /api/v1/feedback", wrk, {"total": {"mean_ms": 1.0, "count": 94}})
    assert (row["requests"], row["ok"], row["rate_limited"]) == (104, 94, 7)
    assert row["errors"] == 3 + 1 + 2  # the 503s, the read error, the timeouts; not the 429s
    assert row["rps"] == pytest.approx(47.0)  # 2xx answers over wrk's 2 s
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"]) == (2.0, 6.0, 12.5, 90.0)
    assert (row["wrk_cpu"], row["machine_cpu"]) == (0.25, 0.9)
    text = bench_report.format_run(
        {"scenarios": {"feedback": row}, "targets": bench_report.targets({"feedback": row})}, "run 1"
    )
    assert "503: 3" in text and "read: 1" in text and "timeout: 2" in text and "total 1.00" in text


def _row(rps: float, p99: float | None) -> dict[str, Any]:
    return {"rps": rps, "p99_ms": p99, "p50_ms": 1.0, "p95_ms": 2.0, "wrk_cpu": 0.3, "errors": 0}


@pytest.mark.parametrize(
    "chain_rps, retrieval_rps, chain_p99, floor_p99, met",
    [
        (330.0, 500.0, 50.0, 20.0, [True, True, True, True]),  # every target exactly at its bound
        (329.0, 499.0, 50.1, 20.1, [False, False, False, False]),
        (900.0, 900.0, None, 5.0, [True, True, False, True]),  # no chain answers: no p99, not met
    ],
)
def test_targets(
    chain_rps: float, retrieval_rps: float, chain_p99: float | None, floor_p99: float, met: list[bool]
) -> None:
    result = bench_report.targets(
        {"floor": _row(1000.0, floor_p99), "retrieval": _row(retrieval_rps, 9.0), "chain": _row(chain_rps, chain_p99)}
    )
    assert [result[key]["met"] for key, *_ in bench_report.TARGETS] == met
    assert result["chain_rps_over_floor_rps"]["value"] == pytest.approx(chain_rps / 1000.0, abs=1e-3)
    assert result["chain_p99_ms"]["target"] == "<= 50" and result["chain_rps_over_floor_rps"]["target"] == ">= 0.33"


def test_targets_without_a_floor_are_not_met() -> None:
    result = bench_report.targets({"chain": _row(100.0, 10.0)})
    assert result["chain_rps_over_floor_rps"] == {"value": None, "target": ">= 0.33", "met": False}


def test_mean_and_spread_over_runs() -> None:
    runs = []
    for floor_rps, chain_rps in ((1000.0, 400.0), (1000.0, 300.0), (1000.0, 350.0)):
        rows = {"floor": _row(floor_rps, 10.0), "retrieval": _row(600.0, 10.0), "chain": _row(chain_rps, 40.0)}
        runs.append({"scenarios": rows, "targets": bench_report.targets(rows)})
    summary = bench_report.aggregate(runs)
    assert summary["scenarios"]["chain"]["rps"] == {"mean": 350.0, "min": 300.0, "max": 400.0}
    ratio = summary["targets"]["chain_rps_over_floor_rps"]
    assert (ratio["mean"], ratio["min"], ratio["max"], ratio["met"], ratio["runs_met"]) == (0.35, 0.3, 0.4, True, 2)
    text = bench_report.format_summary(summary)
    assert "mean of 3 runs" in text and "350.0 (300.0–400.0)" in text and "met in 2 of 3 runs" in text


def test_stage_metrics_per_endpoint() -> None:
    text = (
        'recommendation_latency_seconds_bucket{endpoint="recommendations",le="0.1",stage="ranking"} 3.0\n'
        'recommendation_latency_seconds_sum{endpoint="recommendations",stage="ranking"} 0.3\n'
        'recommendation_latency_seconds_count{endpoint="recommendations",stage="ranking"} 3.0\n'
        'recommendation_latency_seconds_count{endpoint="ranking",stage="ranking"} 7.0\n'
    )
    after = bench_server.parse_stage_metrics(text)
    assert after[("recommendations", "ranking")] == (0.3, 3.0)
    means = bench_server.stage_means({("recommendations", "ranking"): (0.1, 1.0)}, after, "recommendations")
    assert means == {"ranking": {"mean_ms": pytest.approx(100.0), "count": 2}}
    assert bench_server.stage_means(None, after, "recommendations") == {}
    assert bench_server.stage_means({}, after, None) == {}


# --- with wrk ------------------------------------------------------------------------------
@pytest.mark.integration
def test_wrk_against_a_stand_in(serve: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_wrk()
    server = serve(fail="/api/v1/ranking", limit_every=4, key="s3cret")  # every request must carry the key
    out = tmp_path / "bench.json"
    results = bench.run_bench(options(server.url, runs=2, json_path=str(out), api_key="s3cret"), log=quiet)

    assert [run["run"] for run in results["runs"]] == [1, 2]
    rows = results["runs"][0]["scenarios"]
    assert list(rows) == SCENARIOS
    for name, row in rows.items():
        assert row["requests"] > 0, name
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], name
        assert 0 < row["wrk_cpu"] < 1.5, name  # one thread: at most about one core
    for name in ("floor", "retrieval", "chain", "similar"):
        assert rows[name]["errors"] == rows[name]["rate_limited"] == 0 and rows[name]["ok"] == rows[name]["requests"]
    assert rows["ranking"]["errors"] == rows["ranking"]["requests"] and rows["ranking"]["rps"] == 0
    feedback = rows["feedback"]
    assert feedback["errors"] == 0 and feedback["rate_limited"] > 0  # 429 apart, not an error
    assert feedback["ok"] + feedback["rate_limited"] == feedback["requests"]
    assert rows["chain"]["server_stages"]["total"]["mean_ms"] == pytest.approx(2.0)

    # what the server received: the pre-built requests, cycled
    seen = server.seen
    assert all(len(b["item_ids"]) == 100 for b in seen["/api/v1/ranking"])
    users = {b["user_id"] for b in seen["/api/v1/retrieval"]}
    assert any(u <= N_USERS for u in users) and any(u > N_USERS for u in users)  # known users and cold start
    fb_users = [b["user_id"] for b in seen["/api/v1/feedback"]]
    assert min(fb_users) >= bench_workload.FEEDBACK_USER_BASE
    assert all(re.fullmatch(r"/api/v1/items/\d+/similar\?k=10", p) for p in seen["similar"])

    printed = capsys.readouterr().out
    for text in (
        "run 1 of 2",
        "run 2 of 2",
        "mean of 2 runs",
        "chain req/s / floor req/s",
        "target >= 0.33",
        "FAIL",
        "chain-fresh req/s / floor req/s",
    ):
        assert text in printed
    saved = json.loads(out.read_text())
    assert saved["runs"][1]["scenarios"]["feedback"]["rate_limited"] > 0 and saved["summary"]["runs"] == 2


@pytest.fixture(scope="module")
def live_server(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("bench")
    port, log, database = free_port(), tmp / "server.log", tmp / "serve.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PROMETHEUS_MULTIPROC"))}
    env.update(tiny_project.env(database), TMPDIR=str(tmp))
    command = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "2"]
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command, cwd=tiny_project.root, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, f"the server exited:\n{log.read_text()[-4000:]}"
        try:
            with bench_server.Server(url, timeout=5) as server:
                server.ready()
            return True
        except bench.BenchError:
            return False

    try:
        assert wait_until(ready, 120, 0.25), f"not ready in 120 s:\n{log.read_text()[-4000:]}"
        yield url, database
    finally:
        stop_process_group(process)


@pytest.mark.integration
def test_the_real_service(live_server: tuple[str, Path], tmp_path: Path) -> None:
    require_wrk()
    url, database = live_server
    results = bench.run_bench(options(url, warmup=1, json_path=str(tmp_path / "b.json")), log=quiet)

    rows = results["runs"][0]["scenarios"]
    assert list(rows) == SCENARIOS
    for name, row in rows.items():
        assert row["requests"] > 0 and row["rps"] > 0, name
        assert (row["errors"], row["rate_limited"], row["ok"]) == (0, 0, row["requests"]), (name, row["statuses"])
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], name
        assert 0 < row["wrk_cpu"] < 1.5, name
    # the fresh chain computes every reply: each stage is measured; the plain chain's repeats
    # come from the reply cache, so (after the warm-up) mostly only the total is
    fresh = rows["chain-fresh"]["server_stages"]
    assert {"retrieval", "filter", "ranking", "total"} <= set(fresh), fresh
    assert fresh["total"]["count"] >= rows["chain-fresh"]["requests"]  # both workers' histograms, added up
    assert fresh["retrieval"]["mean_ms"] <= fresh["total"]["mean_ms"]
    cached = rows["chain"]["server_stages"]
    assert cached["total"]["count"] >= rows["chain"]["requests"]
    assert cached.get("ranking", {"count": 0})["count"] < cached["total"]["count"] / 2, cached
    assert rows["floor"]["server_stages"] == {} and "total" in rows["feedback"]["server_stages"]
    assert all(t["value"] is not None for t in results["runs"][0]["targets"].values())

    # benchmark feedback went to synthetic users only
    with sqlite3.connect(database) as db:
        low, high, n = db.execute("SELECT MIN(user_id), MAX(user_id), COUNT(*) FROM feedback").fetchone()
    assert n >= rows["feedback"]["ok"] and low >= bench_workload.FEEDBACK_USER_BASE
    assert high < bench_workload.FEEDBACK_USER_BASE + bench_workload.FEEDBACK_USERS

"""``movierec bench serve``: loopback-only, readiness check, workload, bounds and the report.

The tests drive a tiny stand-in server (standard library, in a thread, on 127.0.0.1 with
an ephemeral port) that answers the endpoints the benchmark uses and checks the bodies
it receives; no model is loaded, so the whole file runs in a couple of seconds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from argparse import Namespace
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from movierec.errors import MovierecError, ParamsError
from movierec.serving import bench

N_USERS = 40
N_ITEMS = 300


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ready: bool = True, fail: str | None = None, delay: dict[str, float] | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ready = ready
        self.fail = fail
        self.delay = delay or {}
        self.lock = threading.Lock()
        self.bodies: dict[str, list[Any]] = {}
        self.chain_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server
    server: FakeServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        srv = self.server
        if parts.path == "/ready":
            if srv.ready:
                self._reply(200, {"ready": True, "model_version": "fake", "items": N_ITEMS, "users": N_USERS})
            else:
                self._reply(503, {"ready": False, "reason": "starting"})
        elif parts.path == "/api/v1/popular":
            k = int(parse_qs(parts.query)["k"][0])
            self._reply(
                200,
                {
                    "items": [{"item_id": i, "score": 1.0} for i in range(1, min(k, N_ITEMS) + 1)],
                    "model_version": "fake",
                },
            )
        elif parts.path == "/api/v1/ping":
            self._record(parts.path, None)
        elif parts.path == "/metrics":
            with srv.lock:
                n = len(srv.bodies.get("/api/v1/recommendations", []))
                total = srv.chain_seconds
            self._reply(
                200,
                "# HELP x\n"
                f'recommendation_latency_seconds_sum{{endpoint="recommendations",stage="total"}} {total}\n'
                f'recommendation_latency_seconds_count{{endpoint="recommendations",stage="total"}} {n}\n'
                f'recommendation_latency_seconds_sum{{endpoint="retrieval",stage="total"}} 99.0\n',
                "text/plain",
            )
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(self.path, body)

    def _record(self, path: str, body: Any) -> None:
        srv = self.server
        time.sleep(srv.delay.get(path, 0.0))
        with srv.lock:
            srv.bodies.setdefault(path, []).append(body)
            if path == "/api/v1/recommendations":
                srv.chain_seconds += 0.002
        if path == srv.fail:
            self._reply(500, {"detail": "boom"})
        else:
            self._reply(200, {"pong": True} if body is None else {"items": [], "model_version": "fake"})


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


def args(
    url: str, requests: int = 40, concurrency: int = 4, max_seconds: float = 30.0, out: str | None = None
) -> Namespace:
    return Namespace(url=url, concurrency=concurrency, requests=requests, max_seconds=max_seconds, out=out)


def quiet(_: str) -> None:
    pass


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://example.com:8000",
        "http://0.0.0.0:8000",
        "http://192.168.1.5",
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
    with pytest.raises(ParamsError):  # before any request is sent
        bench.run_bench(args(url), log=quiet)


@pytest.mark.parametrize(
    "url, base",
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.9.9.9", "http://127.9.9.9"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://localhost:1", "http://localhost:1"),
        ("https://LOCALHOST:8443", "https://LOCALHOST:8443"),
    ],
)
def test_accepts_loopback(url: str, base: str) -> None:
    assert bench.check_loopback(url) == base


@pytest.mark.parametrize("field, value", [("concurrency", 0), ("requests", 0), ("max_seconds", 0.0)])
def test_refuses_bad_settings(field: str, value: Any) -> None:
    a = args("http://127.0.0.1:1")
    setattr(a, field, value)
    with pytest.raises(ParamsError, match=field.replace("_", "-")):
        bench.run_bench(a, log=quiet)


def test_server_down_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(bench.BenchError, match="no server answers") as info:
        bench.run_bench(args(f"http://127.0.0.1:{port}"), log=quiet)
    assert isinstance(info.value, MovierecError)  # the CLI prints it as one line, exit 2


def test_not_ready_is_a_clear_error(serve: Any) -> None:
    server = serve(ready=False)
    with pytest.raises(bench.BenchError, match="not ready.*503.*starting"):
        bench.run_bench(args(server.url), log=quiet)
    assert not server.bodies  # no load on a server that is not ready


def test_full_run(serve: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = serve()
    out = tmp_path / "bench.json"
    results = bench.run_bench(args(server.url, requests=40, concurrency=4, out=str(out)), warmup=5, log=quiet)

    assert list(results["scenarios"]) == ["ping", "retrieval", "ranking", "chain"]
    for row in results["scenarios"].values():
        assert (row["completed"], row["ok"], row["errors"], row["stopped_early"]) == (40, 40, 0, False)
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] and row["rps"] > 0
    # exactly warm-up + measured requests reached each endpoint
    bodies = server.bodies
    assert len(bodies["/api/v1/ping"]) == 45
    retrieval, ranking, chain = (bodies[f"/api/v1/{p}"] for p in ("retrieval", "ranking", "recommendations"))
    assert len(retrieval) == len(ranking) == len(chain) == 45
    assert all(b["k"] == 100 and set(b) == {"user_id", "k"} for b in retrieval)
    assert all(
        len(b["item_ids"]) == 100 == len(set(b["item_ids"])) and set(b["item_ids"]) <= set(range(1, N_ITEMS + 1))
        for b in ranking
    )
    assert all(b["k"] == 10 and b["candidates"] == 100 for b in chain)
    users = {b["user_id"] for b in retrieval + ranking + chain}
    assert any(u <= N_USERS for u in users) and any(u > N_USERS for u in users)  # known users and cold start

    targets = results["targets"]
    floor, whole = results["scenarios"]["ping"], results["scenarios"]["chain"]
    assert targets["chain_p99_over_floor_p99"]["value"] == pytest.approx(whole["p99_ms"] / floor["p99_ms"], rel=1e-2)
    assert targets["chain_rps_over_floor_rps"]["value"] == pytest.approx(whole["rps"] / floor["rps"], rel=1e-2)
    assert results["chain_server_stages"]["total"] == {"mean_ms": pytest.approx(2.0), "count": 40}

    printed = capsys.readouterr().out
    for text in (
        "ping",
        "GET /api/v1/ping",
        "POST /api/v1/recommendations",
        "p99 ms",
        "req/s",
        "chain p99 / floor p99",
        "chain req/s / floor req/s",
        "target <= 2",
        "target >= 0.5",
    ):
        assert text in printed
    assert json.loads(out.read_text())["scenarios"]["chain"]["completed"] == 40


def test_errors_are_counted_apart(serve: Any) -> None:
    server = serve(fail="/api/v1/ranking")
    results = bench.run_bench(args(server.url, requests=20), warmup=0, log=quiet)
    ranking = results["scenarios"]["ranking"]
    assert (ranking["completed"], ranking["errors"], ranking["ok"]) == (20, 20, 0)
    assert ranking["error_kinds"] == {"500": 20} and ranking["p99_ms"] is None and ranking["rps"] == 0
    assert results["scenarios"]["chain"]["errors"] == 0


def test_bounded_in_time(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = serve(delay={"/api/v1/recommendations": 0.05})
    started = time.perf_counter()
    results = bench.run_bench(args(server.url, requests=1000, concurrency=2, max_seconds=0.3), warmup=0, log=quiet)
    assert time.perf_counter() - started < 5
    chain = results["scenarios"]["chain"]
    assert chain["stopped_early"] and 0 < chain["completed"] < 1000
    assert "(time limit)" in capsys.readouterr().out


def test_user_pool_is_seeded_and_mixed() -> None:
    pool = bench.user_pool(943)
    assert pool == bench.user_pool(943) and len(pool) == len(set(pool)) == bench.USER_POOL
    cold = [u for u in pool if u > 943]
    assert len(cold) == round(bench.USER_POOL * bench.COLD_SHARE)
    assert all(1 <= u <= 943 for u in pool if u not in cold)
    assert len(bench.user_pool(3)) == 3 + round(bench.USER_POOL * bench.COLD_SHARE)  # fewer users than the pool


def test_parse_stage_metrics() -> None:
    text = (
        'recommendation_latency_seconds_bucket{endpoint="recommendations",le="0.1",stage="ranking"} 3.0\n'
        'recommendation_latency_seconds_sum{endpoint="recommendations",stage="ranking"} 0.3\n'
        'recommendation_latency_seconds_count{endpoint="recommendations",stage="ranking"} 3.0\n'
        'recommendation_latency_seconds_count{endpoint="ranking",stage="ranking"} 7.0\n'
    )
    assert bench.parse_stage_metrics(text, "recommendations") == {"ranking": (0.3, 3.0)}
    means = bench.stage_means({"ranking": (0.1, 1.0)}, bench.parse_stage_metrics(text, "recommendations"))
    assert means == {"ranking": {"mean_ms": pytest.approx(100.0), "count": 2}}

"""``movierec serve`` for real: uvicorn with two worker processes on loopback, driven over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bundle_fixture import TinyProject, free_port, metric_value, stop_process_group, wait_until

pytestmark = pytest.mark.integration

READY_TIMEOUT = 90.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    tmp: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _env(project: TinyProject, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PROMETHEUS_MULTIPROC"))}
    # TMPDIR: `serve` makes its Prometheus multiprocess folder with mkdtemp, so it lands here
    return {**env, **project.env(tmp / "serve.sqlite"), "TMPDIR": str(tmp), **extra}


def _command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", str(workers)]


_stop = stop_process_group


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _ready_versions(url: str) -> set[float]:
    """``loaded_at`` of the worker that answered /ready (a fresh connection each time), or nothing."""
    try:
        r = httpx.get(f"{url}/ready", timeout=5)
    except httpx.HTTPError:
        return set()
    return {r.json()["loaded_at"]} if r.status_code == 200 else set()


@pytest.fixture(scope="module")
def server(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("uvicorn")
    port = free_port()
    log = tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _command(port, 2),
            cwd=tiny_project.root,
            env=_env(tiny_project, tmp),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(f"http://127.0.0.1:{port}", process, log, tmp)
    try:
        # both workers are up once /ready has answered with two different load times
        seen: set[float] = set()

        def both_ready() -> bool:
            assert process.poll() is None, f"the server exited with {process.returncode}:\n{srv.output()}"
            seen.update(_ready_versions(srv.url))
            return len(seen) >= 2

        assert wait_until(both_ready, READY_TIMEOUT, 0.2), f"not ready in {READY_TIMEOUT}s:\n{srv.output()}"
        yield srv
    finally:
        code = _stop(process)
    # a clean stop: exit status 0, no worker left in the group, the metrics folder removed
    assert code == 0, f"the server exited with {code}:\n{srv.output()}"
    assert wait_until(lambda: not _group_alive(process.pid), 10), "a worker outlived the server"
    assert not list(tmp.glob("movierec-prometheus-*")), "serve left its metrics folder behind"


def test_the_chain_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ready = http.get("/ready").json()
        r = http.post("/api/v1/recommendations", json={"user_id": 3, "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) == 5 and body["model_version"] == ready["model_version"]
        assert r.headers["x-request-id"]

        candidates = http.post("/api/v1/retrieval", json={"user_id": 3, "k": 20, "index": "faiss"})
        assert candidates.status_code == 200 and len(candidates.json()["items"]) == 20
        item_ids = [item["item_id"] for item in candidates.json()["items"]]
        ranked = http.post("/api/v1/ranking", json={"user_id": 3, "item_ids": item_ids, "k": 5})
        assert ranked.status_code == 200, ranked.text
        scores = [item["score"] for item in ranked.json()["items"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert {item["item_id"] for item in ranked.json()["items"]} <= set(item_ids)

        assert http.post("/api/v1/retrieval", json={"user_id": 3, "k": 0}).status_code == 422
        assert http.get("/health").json() == {"status": "ok"}


def test_metrics_add_up_over_both_workers(server: Server) -> None:
    n = 40

    def one(i: int) -> int:  # a new connection per request, so the kernel spreads them over the workers
        return httpx.post(
            f"{server.url}/api/v1/recommendations", json={"user_id": 1 + i % 50, "k": 3}, timeout=30
        ).status_code

    before = httpx.get(f"{server.url}/metrics", timeout=10).text
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(one, range(n)))
    assert statuses == [200] * n
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    served = metric_value(
        text, "recommendation_requests_total", endpoint="recommendations", status="200"
    ) - metric_value(before, "recommendation_requests_total", endpoint="recommendations", status="200")
    assert served == n, f"/metrics counts {served} of {n} requests: the workers' values are not added up"
    # the counts came from both processes (one counter file per worker that served a request)
    counter_files = list(server.tmp.glob("movierec-prometheus-*/counter_*.db"))
    assert len(counter_files) == 2, counter_files
    assert metric_value(text, "model_load_time_seconds") > 0
    assert metric_value(text, "recommendation_latency_seconds_count", endpoint="recommendations", stage="ranking") >= n


def test_serve_refuses_to_start_without_a_bundle(tiny_project: TinyProject, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    started = time.monotonic()
    result = subprocess.run(
        _command(free_port(), 2),
        cwd=tiny_project.root,
        env=_env(tiny_project, tmp_path, MOVIEREC_BUNDLE_DIR=str(empty)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "manifest.json" in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 30, "a missing bundle should fail before anything heavy is loaded"


def test_a_reload_on_one_worker_reaches_every_worker(server: Server, tiny_project: TinyProject, tmp_path: Path) -> None:
    """The worker that takes /admin/reload records the bundle; the other loads it by itself."""
    from bundle_fixture import API_KEY, rebundle

    second = rebundle(tiny_project, tmp_path / "second", seed=987)
    new_version = __import__("json").loads((second / "manifest.json").read_text())["version"]
    reply = httpx.post(
        f"{server.url}/admin/reload", json={"path": str(second)}, headers={"X-API-Key": API_KEY}, timeout=120
    ).json()
    assert reply["reloaded"] and reply["model_version"] == new_version, reply

    def all_workers_moved() -> bool:
        versions = set()
        for _ in range(12):  # fresh connections: the kernel spreads them over both workers
            try:
                versions.add(httpx.get(f"{server.url}/ready", timeout=5).json()["model_version"])
            except httpx.HTTPError:
                return False
        return versions == {new_version}

    assert wait_until(all_workers_moved, 60), server.output()
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert f'model_bundle_info{{version="{new_version}"}} 1.0' in metrics

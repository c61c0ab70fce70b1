"""A real Prometheus server scrapes a real multi-worker service and sees the product's metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bundle_fixture import TinyProject, free_port, stop_process_group, wait_until
from processes import monitoring_binary

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_prometheus_scrapes_the_service(tiny_project: TinyProject, tmp_path: Path) -> None:
    binary = monitoring_binary("prometheus", "prometheus")
    api_port, prom_port = free_port(), free_port()
    env = {**os.environ, **tiny_project.env(tmp_path / "serve.sqlite")}
    api = subprocess.Popen(
        [sys.executable, "-m", "movierec.cli", "serve", "--port", str(api_port), "--workers", "2"],
        cwd=tiny_project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    config = (ROOT / "prometheus" / "prometheus.yml").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{api_port}")
    config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    checked = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prom = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base, prom_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prom_port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, 120), "the service did not become ready"
        with httpx.Client(base_url=base, timeout=30) as client:
            for user in range(1, 21):
                assert client.post("/api/v1/recommendations", json={"user_id": user, "k": 5}).status_code == 200
            for user in (900_001, 900_002, 900_003):  # unknown users without history: fallbacks
                assert client.post("/api/v1/retrieval", json={"user_id": user, "k": 5}).json()["is_fallback"]

        def query(expr: str) -> list:
            try:
                reply = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return []
            return reply.get("data", {}).get("result", [])

        requests = 'sum(recommendation_requests_total{endpoint="recommendations",status="200"})'
        assert wait_until(lambda: query(requests) and float(query(requests)[0]["value"][1]) == 20, 60), (
            "Prometheus never saw the 20 chain requests summed over both workers"
        )
        fallbacks = query('sum(fallback_total{reason="unknown_user_no_history"})')
        assert float(fallbacks[0]["value"][1]) == 3
        stages = {
            r["metric"]["stage"] for r in query('recommendation_latency_seconds_count{endpoint="recommendations"}')
        }
        assert {"total", "retrieval", "ranking"} <= stages
        assert query("max(model_load_time_seconds)") and query("model_bundle_info == 1")
        rules = httpx.get(f"{prom_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"MovierecServerErrors", "MovierecHighP99Latency"}
    finally:
        stop_process_group(prom)
        stop_process_group(api)

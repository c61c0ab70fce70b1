"""Training metrics reach Prometheus: pushed to a real Pushgateway, scraped by a real Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from bundle_fixture import TinyProject, chdir, free_port, stop_process_group, wait_until
from processes import monitoring_binary

from movierec.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_pushed_training_metrics_are_queryable_in_prometheus(
    tiny_project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway_binary = monitoring_binary("prometheus-pushgateway", "prometheus-pushgateway")
    prometheus_binary = monitoring_binary("prometheus", "prometheus")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = tmp_path / "project"
    shutil.copytree(tiny_project.root, project, ignore=shutil.ignore_patterns("mlflow"))
    gateway_port, prom_port = free_port(), free_port()
    gateway = f"127.0.0.1:{gateway_port}"
    config = (ROOT / "prometheus" / "prometheus.yml").read_text()
    config = config.replace("127.0.0.1:9091", gateway).replace("scrape_interval: 5s", "scrape_interval: 1s")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    # its own persistence file: Debian's default is shared by every Pushgateway on the machine
    pushgateway = _start(
        [gateway_binary, f"--web.listen-address={gateway}", f"--persistence.file={tmp_path / 'gateway.data'}"]
    )
    prometheus = _start(
        [
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
    )
    try:

        def up(url: str) -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(lambda: up(f"http://{gateway}/-/ready"), 60), "the Pushgateway did not start"
        with chdir(project):
            assert main(["register"]) == 0  # a registered version to report
            assert main(["push-metrics", "--gateway", gateway]) == 0
        metrics = json.loads((project / "reports" / "metrics.json").read_text())["systems"]
        registered = json.loads((project / "reports" / "registry.json").read_text())

        def query(expr: str) -> list:
            try:
                reply = httpx.get(
                    f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": expr}, timeout=5
                ).json()
            except (httpx.HTTPError, ValueError):
                return []
            return reply.get("data", {}).get("result", [])

        selector = '{job="movierec_training",dataset="tiny-latest"}'
        assert wait_until(lambda: bool(query(f"retrieval_accuracy{selector}")), 60), "Prometheus never saw the push"
        value = float(query(f"retrieval_accuracy{selector}")[0]["value"][1])
        assert value == pytest.approx(metrics["retrieval"]["all"]["recall@100"])
        assert float(query(f"ranking_ndcg{selector}")[0]["value"][1]) == pytest.approx(
            metrics["chain"]["all"]["ndcg@10"]
        )
        stages = {r["metric"]["stage"] for r in query(f"training_duration_seconds{selector}")}
        assert {"train_retrieval", "train_ranking", "evaluate", "register"} <= stages
        versions = {r["metric"]["alias"]: float(r["value"][1]) for r in query(f"model_version{selector}")}
        assert versions["registered"] == registered["version"]
        assert query(f"time() - training_last_success_timestamp_seconds{selector} < 300")
    finally:
        stop_process_group(prometheus)
        stop_process_group(pushgateway)


def test_push_without_an_address_says_how_to_set_one(tiny_project: TinyProject, monkeypatch, capsys) -> None:
    monkeypatch.delenv("MOVIEREC_PUSHGATEWAY", raising=False)
    with chdir(tiny_project.root):
        assert main(["push-metrics"]) == 2
    assert "MOVIEREC_PUSHGATEWAY" in capsys.readouterr().err


def test_an_unreachable_pushgateway_is_a_clear_error(tiny_project: TinyProject, capsys) -> None:
    with chdir(tiny_project.root):
        assert main(["push-metrics", "--gateway", f"127.0.0.1:{free_port()}"]) == 2
    assert "could not push to the Pushgateway" in capsys.readouterr().err

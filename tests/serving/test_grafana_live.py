"""Every Grafana panel shows data: the real service (two workers), Prometheus and the Pushgateway.

Grafana itself is not installed here, so the test does what Grafana would: it substitutes
the dashboard's variables (resolved through Prometheus, as Grafana's variable queries are)
and Grafana's ``$__interval``, ``$__rate_interval`` and ``$__range``, sends each panel's
queries to Prometheus' range-query API over the time of the test's load, and requires a
finite value from every panel. Run with ``-s`` to see each panel's values.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from bundle_fixture import API_KEY, TinyProject, chdir, free_port, stop_process_group, wait_until
from processes import monitoring_binary
from prometheus_client.parser import text_string_to_metric_families

from movierec.grafana.promql import interval, metric_names, rate_interval, substitute

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SCRAPE_SECONDS = 1
MAX_DATA_POINTS = 200
LOAD_SECONDS = 8.0
pytestmark = pytest.mark.integration


def _start(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _prometheus_config(api: str, gateway: str) -> str:
    """The repository's prometheus.yml scraping this test's service and Pushgateway every second."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config.pop("rule_files", None)  # the alert rules are tested on their own
    config.pop("alerting", None)
    config["global"].update(scrape_interval=f"{SCRAPE_SECONDS}s", evaluation_interval=f"{SCRAPE_SECONDS}s")
    targets = {"127.0.0.1:8000": api, "127.0.0.1:9091": gateway}
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            group["targets"] = [targets.get(t, t) for t in group["targets"]]
    return yaml.safe_dump(config)


def _drive(base: str) -> dict[str, int]:
    """A bounded load over every endpoint for about ``LOAD_SECONDS``: answers counted by status."""
    statuses: dict[str, int] = {}
    headers = {"X-API-Key": API_KEY}
    # no keep-alive: each request opens a connection, so the kernel spreads them over both workers
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base, timeout=30, limits=limits, headers=headers) as client:

        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            reply = client.request(method, path, **kwargs)
            statuses[f"{method} {path.split('?')[0]} {reply.status_code}"] = (
                statuses.get(f"{method} {path.split('?')[0]} {reply.status_code}", 0) + 1
            )
            return reply

        popular = [item["item_id"] for item in call("GET", "/api/v1/popular?k=20").json()["items"]]
        # feedback on a recommended item (the interacted share), and on one never recommended
        for user in range(1, 6):
            shown = call("POST", "/api/v1/recommendations", json={"user_id": user, "k": 5}).json()["items"]
            call("POST", "/api/v1/feedback", json={"user_id": user, "item_id": shown[0]["item_id"], "event": "click"})
            call("POST", "/api/v1/feedback", json={"user_id": user, "item_id": popular[-1], "rating": 4.0})
        call("POST", "/api/v1/feedback", json={"user_id": 7, "item_id": popular[0], "event": "view"})
        call("POST", "/admin/reload", json={})  # the same bundle again: a load time and a version
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < LOAD_SECONDS and rounds < 40:
            rounds += 1
            for user in range(1, 11):
                call("POST", "/api/v1/recommendations", json={"user_id": user + rounds, "k": 5, "diversity": 0.2})
            call("POST", "/api/v1/retrieval", json={"user_id": 2 + rounds, "k": 20})
            call("POST", "/api/v1/retrieval", json={"history": popular[:3], "k": 10, "index": "faiss"})
            call("POST", "/api/v1/ranking", json={"user_id": 3 + rounds, "item_ids": popular[:10]})
            call("GET", f"/api/v1/items/{popular[rounds % 10]}")
            call("GET", f"/api/v1/items/{popular[rounds % 10]}/similar?k=5")
            call("GET", "/api/v1/popular?k=10")
            for path in ("/api/v1/ping", "/health", "/ready"):
                call("GET", path)
            # fallbacks: unknown users without a history
            call("POST", "/api/v1/recommendations", json={"user_id": 900_000 + rounds, "k": 5})
            call("POST", "/api/v1/retrieval", json={"user_id": 800_000 + rounds, "k": 5})
            call(
                "POST",
                "/api/v1/feedback",
                json={"user_id": 100 + rounds, "item_id": popular[rounds % 20], "event": "view"},
            )
            call("GET", "/api/v1/items/999999999")  # 404
            call("POST", "/api/v1/recommendations", json={"user_id": 1, "k": 0})  # 422
            time.sleep(0.2)
    return statuses


def _query(prom: str, path: str, **params: Any) -> Any:
    reply = httpx.get(f"{prom}/api/v1/{path}", params=params, timeout=10).json()
    assert reply.get("status") == "success", reply
    return reply["data"]


def _variables(prom: str, dashboard: dict[str, Any], start: float, end: float) -> dict[str, str]:
    """Each template variable's value as Grafana would set it (its first value, or "All")."""
    values = {}
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"])
        assert found, f"unsupported variable query {variable['query']!r}"
        options = _query(prom, f"label/{found[2]}/values", **{"match[]": found[1], "start": start, "end": end})
        assert options, f"variable {variable['name']} of {dashboard['title']} has no values"
        values[variable["name"]] = variable["allValue"] if variable.get("includeAll") else sorted(options)[0]
    return values


def _shown(series: list[dict[str, Any]], legend: str) -> list[str]:
    """Each series' legend (as Grafana renders ``legend``), last and highest finite value over the range."""
    out = []
    for one in series:
        finite = [float(v) for _, v in one["values"] if math.isfinite(float(v))]
        if not finite:
            continue
        labels = one["metric"]
        name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m, labels=labels: labels.get(m[1], ""), legend)
        if legend == "__auto":
            name = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("job", "instance")) or "value"
        out.append(f"{name} = {finite[-1]:.4g}" + (f" (max {max(finite):.4g})" if max(finite) != finite[-1] else ""))
    return out


def _exposed(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_every_dashboard_panel_shows_data(
    tiny_project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prometheus_binary = monitoring_binary("prometheus", "prometheus")
    gateway_binary = monitoring_binary("prometheus-pushgateway", "prometheus-pushgateway")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    api_port, gateway_port, prom_port = free_port(), free_port(), free_port()
    base, gateway, prom = f"http://127.0.0.1:{api_port}", f"127.0.0.1:{gateway_port}", f"http://127.0.0.1:{prom_port}"
    (tmp_path / "prometheus.yml").write_text(_prometheus_config(f"127.0.0.1:{api_port}", gateway))
    env = {
        **os.environ,
        **tiny_project.env(tmp_path / "serve.sqlite"),
        "MOVIEREC_QUALITY_INTERVAL_SECONDS": "1",
        "TMPDIR": str(tmp_path),  # where `serve` makes its multiprocess folder
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = [
        _start(
            [sys.executable, "-m", "movierec.cli", "serve", "--port", str(api_port), "--workers", "2"],
            tmp_path / "api.log",
            cwd=tiny_project.root,
            env=env,
        ),
        _start(
            [gateway_binary, f"--web.listen-address={gateway}", f"--persistence.file={tmp_path / 'gateway.data'}"],
            tmp_path / "pushgateway.log",
        ),
        _start(
            [
                prometheus_binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        ),
    ]

    def seen(expr: str) -> bool:
        try:
            return bool(_query(prom, "query", query=expr)["result"])
        except (httpx.HTTPError, AssertionError, ValueError):
            return False

    try:
        started = time.time()
        assert wait_until(lambda: _up(f"http://{gateway}/-/ready"), 60), "the Pushgateway did not start"
        # training pushes its metrics the way the pipeline does, while the service starts
        from movierec.cli import main

        project = tmp_path / "project"
        shutil.copytree(tiny_project.root, project, ignore=shutil.ignore_patterns("mlflow"))
        with chdir(project):
            assert main(["register"]) == 0
            assert main(["push-metrics", "--gateway", gateway]) == 0
        assert wait_until(lambda: _up(f"{base}/ready"), 120), (tmp_path / "api.log").read_text()[-3000:]
        assert wait_until(lambda: _up(f"{prom}/-/ready"), 60), "Prometheus did not start"
        assert wait_until(lambda: seen('up{job="movierec-api"} == 1'), 60), "Prometheus never scraped the API"
        statuses = _drive(base)
        print(
            f"\nload: {sum(statuses.values())} requests; " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        )

        for expr in (
            "recommendation_interacted_pairs > 0",  # the feedback was matched (3 s after it arrived)
            "retrieval_accuracy",
            'process_resident_memory_bytes{job="movierec-api"}',
        ):
            assert wait_until(lambda expr=expr: seen(expr), 60), f"Prometheus never saw {expr}"
        workers = _query(prom, "query", query='count by (pid) (process_resident_memory_bytes{job="movierec-api"})')
        assert len(workers["result"]) == 2, workers  # each of the two workers, by pid
        time.sleep(2 * SCRAPE_SECONDS)
        end = time.time()
        range_s = math.ceil(end - started)
        step = interval(range_s, MAX_DATA_POINTS, SCRAPE_SECONDS)
        rate = rate_interval(step, SCRAPE_SECONDS)

        exposed = _exposed(httpx.get(f"{base}/metrics", timeout=10).text)
        exposed |= _exposed(httpx.get(f"http://{gateway}/metrics", timeout=10).text)
        empty = []
        for path in DASHBOARDS:
            board = json.loads(path.read_text())
            variables = _variables(prom, board, started, end)
            print(f"\n{board['title']} ({path.name}; {variables}, $__interval={step}s, $__rate_interval={rate}s)")
            for panel in board["panels"]:
                shown = []
                for target in panel["targets"]:
                    missing = metric_names(target["expr"]) - exposed
                    assert not missing, f"{panel['title']}: {missing} not in the live exposition"
                    expr = substitute(target["expr"], variables, step, rate, range_s)
                    result = _query(prom, "query_range", query=expr, start=started, end=end, step=step)["result"]
                    shown += _shown(result, target["legendFormat"])
                print(f"  {panel['title']}: {'; '.join(shown) or 'NO DATA'}")
                if not shown:
                    empty.append(f"{board['title']} / {panel['title']}")
        assert not empty, f"panels without data: {empty}"
    finally:
        for process in reversed(processes):
            stop_process_group(process)

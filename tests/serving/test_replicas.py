"""Two replicas on one PostgreSQL database: two ``movierec serve`` processes, each in a working
folder of its own, fetching the same registered bundle from an MLflow registry, sharing a real
PostgreSQL server (Debian's, started by the tests) for feedback, the request log and reloads."""

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
from bundle_fixture import API_KEY, TinyProject, free_port, rebundle, stop_process_group, wait_until
from postgres_server import PostgresServer

pytestmark = pytest.mark.integration
READY_TIMEOUT = 120.0
RATE_LIMIT = 25  # feedback events per user per minute, across both replicas


@dataclass
class Replica:
    url: str
    process: subprocess.Popen
    folder: Path
    http: httpx.Client  # keep-alive connections: a client's next request goes out at once

    def output(self) -> str:
        return (self.folder / "serve.log").read_text(encoding="utf-8", errors="replace")[-4000:]


@dataclass
class Registry:
    uri: str
    artifacts: Path

    def register(self, bundle: Path) -> str:
        """Log ``bundle`` as a run's artifact and register it as the next version of ``movierec``."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        if client.get_experiment_by_name("replicas") is None:
            client.create_experiment("replicas", artifact_location=self.artifacts.as_uri())
            client.create_registered_model("movierec")
        run = client.create_run(client.get_experiment_by_name("replicas").experiment_id)
        client.log_artifacts(run.info.run_id, str(bundle), "bundle")
        client.set_terminated(run.info.run_id)
        return str(client.create_model_version("movierec", f"{run.info.artifact_uri}/bundle", run.info.run_id).version)


@dataclass
class Cluster:
    a: Replica
    b: Replica
    server: PostgresServer
    database: str
    registry: Registry

    def sql(self, statement: str) -> list[tuple]:
        return self.server.admin(statement, self.database)


def _version(bundle: Path) -> str:
    import json

    return json.loads((bundle / "manifest.json").read_text())["version"]


def _start(folder: Path, env: dict[str, str]) -> Replica:
    folder.mkdir(parents=True)
    port = free_port()
    with open(folder / "serve.log", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=folder,
            env={**env, "TMPDIR": str(folder), "MOVIEREC_MODEL_CACHE_DIR": str(folder / "models")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    return Replica(url, process, folder, httpx.Client(base_url=url, timeout=30))


def _ready(replica: Replica) -> dict | None:
    assert replica.process.poll() is None, f"replica exited with {replica.process.returncode}:\n{replica.output()}"
    try:
        reply = replica.http.get("/ready", timeout=5)
    except httpx.HTTPError:
        return None
    return reply.json() if reply.status_code == 200 else None


@pytest.fixture(scope="module")
def cluster(
    tiny_project: TinyProject, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("replicas")
    registry = Registry(f"sqlite:///{base / 'mlflow.db'}", base / "artifacts")
    assert registry.register(tiny_project.checkpoints) == "1"
    database, url = postgres.new_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PROMETHEUS_MULTIPROC"))}
    env.update(
        MOVIEREC_DATABASE_URL=url,
        MOVIEREC_MODEL_URI="models:/movierec/1",
        MOVIEREC_TRACKING_URI=registry.uri,
        MOVIEREC_API_KEY=API_KEY,
        MOVIEREC_RELOAD_POLL_SECONDS="0.5",
        MOVIEREC_FEEDBACK_RATE_LIMIT=str(RATE_LIMIT),
        MOVIEREC_DATABASE_TIMEOUT_SECONDS="2",
    )
    a = _start(base / "a", env)
    b = _start(base / "b", env)
    try:
        for replica in (a, b):
            assert wait_until(lambda r=replica: _ready(r) is not None, READY_TIMEOUT, 0.5), replica.output()
        yield Cluster(a, b, postgres, database, registry)
    finally:
        for replica in (a, b):
            replica.http.close()
            stop_process_group(replica.process)


def _recommend(replica: Replica, user: int) -> list[int]:
    reply = replica.http.post("/api/v1/recommendations", json={"user_id": user, "k": 10})
    assert reply.status_code == 200, reply.text
    return [item["item_id"] for item in reply.json()["items"]]


def _feedback(replica: Replica, user: int, item: int) -> int:
    reply = replica.http.post("/api/v1/feedback", json={"user_id": user, "item_id": item, "event": "view"})
    return reply.status_code


def test_each_replica_fetched_the_registered_bundle_into_its_own_folder(
    cluster: Cluster, tiny_project: TinyProject
) -> None:
    expected = _version(tiny_project.checkpoints)
    assert _ready(cluster.a)["model_version"] == _ready(cluster.b)["model_version"] == expected
    for replica in (cluster.a, cluster.b):
        assert _version(replica.folder / "models" / "movierec-v1") == expected


def test_feedback_through_one_replica_changes_the_others_next_answer(
    cluster: Cluster, histories: dict[int, set[int]]
) -> None:
    users = sorted(histories)[:4]
    cycles = 40  # twenty each way, ten per user (under the rate limit)
    stale = 0
    for cycle in range(cycles):
        writer, reader = (cluster.a, cluster.b) if cycle % 2 == 0 else (cluster.b, cluster.a)
        user = users[cycle % len(users)]
        before = _recommend(reader, user)
        assert _feedback(writer, user, before[0]) == 201
        after = _recommend(reader, user)  # the very next request, on the other replica
        stale += before[0] in after  # a viewed item is seen: no longer recommended
    assert stale == 0, f"{stale} of {cycles} answers did not reflect feedback posted through the other replica"


def test_no_event_is_lost_when_both_replicas_take_feedback_at_once(
    cluster: Cluster, catalogue: dict[int, dict]
) -> None:
    items = sorted(catalogue)
    users = range(500_000, 500_050)

    def post(n: int) -> int:
        return _feedback(cluster.a if n % 2 else cluster.b, users[n % 50], items[n % len(items)])

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(200)))
    assert statuses.count(201) == 200, {s: statuses.count(s) for s in set(statuses)}
    stored = cluster.sql("SELECT COUNT(*), COUNT(DISTINCT id) FROM feedback WHERE user_id BETWEEN 500000 AND 500049")
    assert stored == [(200, 200)]


def test_the_rate_limit_counts_feedback_through_both_replicas(cluster: Cluster, catalogue: dict[int, dict]) -> None:
    items = sorted(catalogue)

    def post(n: int) -> int:
        return _feedback(cluster.a if n % 2 else cluster.b, 600_000, items[n % len(items)])

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(60)))
    assert statuses.count(201) == RATE_LIMIT and statuses.count(429) == 60 - RATE_LIMIT, statuses
    assert cluster.sql("SELECT COUNT(*) FROM feedback WHERE user_id = 600000") == [(RATE_LIMIT,)]


def test_the_request_logs_of_both_replicas_land_in_one_table(cluster: Cluster, histories: dict[int, set[int]]) -> None:
    users = sorted(histories)[:6]
    for user in users[:3]:
        _recommend(cluster.a, user)
    for user in users[3:]:
        _recommend(cluster.b, user)

    def logged() -> set[int]:
        rows = cluster.sql("SELECT DISTINCT user_id FROM request_logs WHERE endpoint = 'recommendations'")
        return {r[0] for r in rows}

    assert wait_until(lambda: set(users) <= logged(), 15, 0.2), (users, logged())


def test_a_reload_through_one_replica_reaches_the_other(
    cluster: Cluster, tiny_project: TinyProject, tmp_path: Path
) -> None:
    second = rebundle(tiny_project, tmp_path / "second", seed=4242)
    assert cluster.registry.register(second) == "2"
    reply = cluster.a.http.post(
        "/admin/reload", json={"version": 2}, headers={"X-API-Key": API_KEY}, timeout=120
    ).json()
    assert reply["reloaded"] and reply["model_version"] == _version(second), reply
    assert cluster.sql("SELECT source, version FROM bundle_pointer") == [("models:/movierec/2", _version(second))]
    assert wait_until(lambda: (_ready(cluster.b) or {}).get("model_version") == _version(second), 60, 0.5), (
        cluster.b.output()
    )
    assert _version(cluster.b.folder / "models" / "movierec-v2") == _version(second)  # fetched by the replica itself


def test_an_unreachable_database_turns_both_replicas_unready_until_it_returns(
    cluster: Cluster, catalogue: dict[int, dict]
) -> None:
    item = sorted(catalogue)[0]
    cluster.server.admin(f"ALTER DATABASE {cluster.database} ALLOW_CONNECTIONS false")
    try:
        cluster.server.admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{cluster.database}'"
        )
        for replica in (cluster.a, cluster.b):
            ready = replica.http.get("/ready")
            assert ready.status_code == 503 and "service database postgresql://***@" in ready.json()["reason"]
            started = time.perf_counter()
            assert _feedback(replica, 700_000, item) == 503
            assert time.perf_counter() - started < 10
    finally:
        cluster.server.admin(f"ALTER DATABASE {cluster.database} ALLOW_CONNECTIONS true")
    for replica in (cluster.a, cluster.b):
        assert wait_until(lambda r=replica: _ready(r) is not None, 30, 0.5), replica.output()


def test_serve_refuses_an_unreachable_database_in_one_line(tiny_project: TinyProject) -> None:
    url = f"postgresql://movierec:hunter2@127.0.0.1:{free_port()}/movierec"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_")}
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env={**env, "MOVIEREC_BUNDLE_DIR": str(tiny_project.checkpoints), "MOVIEREC_DATABASE_URL": url},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "cannot be reached" in done.stderr and "hunter2" not in done.stderr

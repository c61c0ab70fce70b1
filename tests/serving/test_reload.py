"""Hot reload under load: no request is lost or fails while bundles are swapped, each sees one version."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_fixture import API_KEY, TinyProject, make_settings, metric_value, rebundle, wait_until
from fastapi.testclient import TestClient

from movierec.serving.app import create_app

pytestmark = pytest.mark.integration

THREADS, MAX_PER_THREAD = 4, 300  # the load runs until both reloads are over, at most this long


@pytest.fixture(scope="module")
def second_bundle(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same parts under another version (the manifest of a params file with another seed)."""
    return rebundle(tiny_project, tmp_path_factory.mktemp("second") / "checkpoints", seed=7)


@pytest.fixture
def reload_client(tiny_project: TinyProject, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_project, tmp_path / "db.sqlite"))) as client:
        yield client


def test_reload_under_load_loses_no_request(reload_client: TestClient, second_bundle: Path, manifest: dict) -> None:
    client = reload_client
    old = manifest["version"]
    results: list[tuple[int, str | None]] = []
    sent = [0] * THREADS
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []

    def load(worker: int) -> None:
        try:
            for i in range(MAX_PER_THREAD):
                if stop.is_set():
                    return
                sent[worker] += 1
                r = client.post("/api/v1/recommendations", json={"user_id": 1 + (worker * 13 + i) % 60, "k": 5})
                version = r.json().get("model_version") if r.status_code == 200 else None
                with lock:
                    results.append((r.status_code, version))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(THREADS)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: len(results) >= 10, 60, 0.01), "the load did not start"

        first = client.post("/admin/reload", json={"path": str(second_bundle)}, headers={"X-API-Key": API_KEY})
        assert first.status_code == 200, first.text
        assert first.json()["reloaded"] is True, first.json()
        new = first.json()["model_version"]
        assert new != old and first.json()["previous_version"] == old
        probe = client.post("/api/v1/recommendations", json={"user_id": 2, "k": 5})
        assert probe.json()["model_version"] == new, "a request after the swap was served by the old bundle"

        second = client.post("/admin/reload", headers={"X-API-Key": API_KEY})  # back to the configured bundle
        assert second.status_code == 200 and second.json()["reloaded"] is True, second.text
        assert second.json()["model_version"] == old and second.json()["previous_version"] == new
        after_second = len(results)
        assert all(t.is_alive() for t in threads), "the load ended before the reloads did: raise MAX_PER_THREAD"
        assert wait_until(lambda: len(results) >= after_second + 20, 60, 0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    assert not failures, failures
    assert len(results) == sum(sent), "requests were lost"
    statuses = {status for status, _ in results}
    assert statuses == {200}, f"statuses during the reloads: {statuses}"
    versions = [version for _, version in results]
    assert set(versions) == {old, new}, "the load should have been served by both bundles"
    assert versions[-1] == old
    assert client.get("/ready").json()["model_version"] == old
    text = client.get("/metrics").text
    assert metric_value(text, "model_bundle_info", version=old) == 1
    assert metric_value(text, "model_bundle_info", version=new) == 0

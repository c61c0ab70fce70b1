"""The model lifecycle against a real ``mlflow server`` on loopback: runs, versions, aliases,
promote-if-better, promote, rollback, and the service reloading the champion by alias."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from bundle_fixture import API_KEY, TinyProject, chdir, free_port, make_settings, stop_process_group, wait_until
from fastapi.testclient import TestClient

from movierec.cli import main
from movierec.serving.app import create_app

pytestmark = pytest.mark.integration
MODEL = "movierec"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking and registry server (SQLite store, proxied artifacts) on loopback."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{base / 'mlflow.db'}",
            "--artifacts-destination",
            str(base / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=(base / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # stop waiting if it died

    try:
        assert wait_until(healthy, 120, 0.5) and process.poll() is None, (base / "server.log").read_text()[-3000:]
        yield url
    finally:
        stop_process_group(process)


def _pipeline_run(project: TinyProject, target: Path, seed: int, chain_ndcg: float) -> Path:
    """A copy of the project whose evaluation says ``chain_ndcg`` with every bar met, bundled
    under its own version (the seed goes into the bundle's params)."""
    shutil.copytree(project.root, target)
    metrics_path = target / "reports" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["systems"]["chain"]["all"]["ndcg@10"] = chain_ndcg
    for bar in metrics["bars"].values():
        bar["met"] = True
    metrics_path.write_text(json.dumps(metrics))
    params = {**project.params, "train": {**project.params["train"], "seeds": [seed]}}
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with chdir(target):
        assert main(["bundle"]) == 0
    return target


def _register(project: Path) -> dict:
    with chdir(project):
        assert main(["register"]) == 0
    return json.loads((project / "reports" / "registry.json").read_text())


def test_two_runs_promote_rollback_and_the_service_follows_the_champion(
    mlflow_server: str,
    tiny_project: TinyProject,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    better = _pipeline_run(tiny_project, tmp_path / "better", seed=11, chain_ndcg=0.30)
    worse = _pipeline_run(tiny_project, tmp_path / "worse", seed=12, chain_ndcg=0.20)

    first = _register(better)
    assert first["version"] == 1 and first["promoted"] and first["champion"] == 1
    second = _register(worse)
    assert second["version"] == 2 and not second["promoted"] and second["champion"] == 1
    assert "worse than the champion" in second["reason"]
    again = _register(better)  # a rerun (a retried task): the same bundle is not registered twice
    assert again["version"] == 1 and again["run_id"] == first["run_id"] and "already version 1" in again["reason"]
    assert not (better / "mlflow").exists()  # with a server configured nothing is written locally

    client = MlflowClient(mlflow_server)
    model = client.get_registered_model(MODEL)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1", "challenger": "2"}
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 2
    second_tags = client.get_model_version(MODEL, "2").tags
    assert second_tags["promotion_decision"] == "kept as challenger"
    assert float(second_tags["test.chain.ndcg_at_10"]) == pytest.approx(0.20)  # its metrics, as tags
    assert second_tags["bar.chain_ndcg_at_10_over_ease"].endswith("(met)")
    # the run holds the settings, the epoch curves, the evaluation, the lineage and the bundle
    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["retrieval.embedding_dim"] == str(tiny_project.params["retrieval"]["embedding_dim"])
    assert run.data.metrics["metrics.systems.chain.all.ndcg_at_10"] == pytest.approx(0.30)
    assert len(client.get_metric_history(run.info.run_id, "retrieval_epochs.loss")) >= 2
    for tag in ("data_fingerprint", "git_commit", "dvc_lock_digest", "bundle_version"):
        assert run.data.tags[tag], tag
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"bundle", "reports", "plots", "evaluation.txt"} <= artifacts
    assert "manifest.json" in {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "bundle")}

    settings = make_settings(
        tiny_project,
        tmp_path / "serve.sqlite",
        model_uri=f"models:/{MODEL}@champion",
        model_cache_dir=tmp_path / "cache",
        tracking_uri=mlflow_server,
    )
    versions = {
        n: json.loads((p / "checkpoints" / "manifest.json").read_text())["version"]
        for n, p in (("1", better), ("2", worse))
    }
    assert versions["1"] != versions["2"]
    headers = {"X-API-Key": API_KEY}
    with TestClient(create_app(settings)) as service:
        assert service.get("/ready").json()["model_version"] == versions["1"]  # the champion, from the registry

        with chdir(better):
            assert main(["models", "promote", "2"]) == 0
        reply = service.post("/admin/reload", json={"alias": "champion"}, headers=headers).json()
        assert reply["reloaded"] and reply["model_version"] == versions["2"] and reply["registry_version"] == "2"
        assert reply["model_uri"] == f"models:/{MODEL}@champion"

        with chdir(better):
            assert main(["models", "rollback"]) == 0
            assert main(["models", "list"]) == 0
        listing = capsys.readouterr().out
        assert "champion moved back from version 2 to version 1" in listing
        reply = service.post("/admin/reload", json={"alias": "champion"}, headers=headers).json()
        assert reply["reloaded"] and reply["model_version"] == versions["1"] and reply["registry_version"] == "1"

        # by number, and what fails keeps the current bundle and says why
        assert service.post("/admin/reload", json={"version": 2}, headers=headers).json()["registry_version"] == "2"
        missing = service.post("/admin/reload", json={"alias": "nope"}, headers=headers).json()
        assert not missing["reloaded"] and "no alias 'nope'" in missing["reason"]
        assert missing["model_version"] == versions["2"]
        both = service.post("/admin/reload", json={"alias": "champion", "version": 1}, headers=headers)
        assert both.status_code == 422

    # the champion history: one more rollback has nowhere to go; unknown versions are named
    with chdir(better):
        assert main(["models", "rollback"]) == 2
        assert main(["models", "promote", "9"]) == 2
    err = capsys.readouterr().err
    assert "no previous champion" in err and "has no version 9 (versions: 1, 2)" in err


def test_the_embedded_store_needs_no_server(tiny_project: TinyProject, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = _pipeline_run(tiny_project, tmp_path / "embedded", seed=13, chain_ndcg=0.25)
    report = _register(project)
    assert report["store"].startswith("embedded") and report["version"] == 1 and report["promoted"]
    assert (project / "mlflow" / "mlflow.db").exists()
    assert list((project / "mlflow" / "artifacts").rglob("manifest.json"))
    # the service finds the embedded store under its working directory
    settings = make_settings(
        tiny_project, tmp_path / "s.sqlite", model_uri="models:/movierec/1", model_cache_dir=tmp_path / "c"
    )
    with chdir(project), TestClient(create_app(settings)) as service:
        version = json.loads((project / "checkpoints" / "manifest.json").read_text())["version"]
        assert service.get("/ready").json()["model_version"] == version


def test_an_unreachable_registry_is_a_clear_error(
    tiny_project: TinyProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with chdir(tiny_project.root):
        assert main(["models", "list"]) == 2
    assert f"MLflow at MLFLOW_TRACKING_URI={closed}" in capsys.readouterr().err
    # the service stays up, not ready, and says why; a malformed address is named too
    for uri, reason in ((f"models:/{MODEL}@champion", "could not"), ("runs:/abc/model", "not a registry address")):
        settings = make_settings(
            tiny_project, tmp_path / "s.sqlite", model_uri=uri, model_cache_dir=tmp_path / "c", tracking_uri=closed
        )
        with TestClient(create_app(settings)) as service:
            ready = service.get("/ready")
            assert ready.status_code == 503 and reason in ready.json()["reason"], ready.json()
        assert not list((tmp_path / "c").glob("*")) if (tmp_path / "c").exists() else True

"""The Airflow DAG ``ml_pipeline_dag``: its shape, ``airflow dags test`` on a tiny project, and a
REST trigger on a real ``airflow standalone`` (started with ``make airflow``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from dvc_project import make_dvc_project, run
from processes import free_port, stop_process_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
TASKS = [
    "data_retrieval",
    "preprocessing",
    "feature_engineering",
    "train_retrieval",
    "train_ranking",
    "evaluate_models",
    "push_metrics",
    "register_models",
    "dvc_push",
]
pytestmark = pytest.mark.integration


def _airflow_env(home: Path, project: Path, env: dict[str, str]) -> dict[str, str]:
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MOVIEREC_PROJECT_DIR": str(project),
    }


def test_the_dag_file_parses_fast_and_holds_the_nine_tasks_in_order(tmp_path: Path) -> None:
    script = f"""
import json, runpy, sys, time
import airflow.sdk  # the parser has Airflow loaded already; time only the DAG file
start = time.perf_counter()
namespace = runpy.run_path({str(DAGS / "ml_pipeline_dag.py")!r})
seconds = time.perf_counter() - start
heavy = sorted(m for m in ("tensorflow", "movierec", "mlflow", "pandas", "dvc") if m in sys.modules)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS)!r})
dag = bag.dags["ml_pipeline_dag"]
order = [t.task_id for t in dag.topological_sort()]
print(json.dumps({{
    "seconds": seconds, "heavy": heavy, "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "dags": sorted(bag.dag_ids), "order": order,
    "upstream": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}},
    "retries": {{t.task_id: t.retries for t in dag.tasks}},
    "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
    "schedule": dag.timetable.expression, "run_immediately": bool(dag.timetable.run_immediately), "params": sorted(dag.params.keys()),
    "doc": dag.doc_md,
}}))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {} and info["dags"] == ["ml_pipeline_dag"]
    assert info["seconds"] < 0.5 and info["heavy"] == [], info  # no heavy imports at parse time
    assert info["order"] == TASKS
    for before, after in zip(TASKS, TASKS[1:]):
        assert info["upstream"][after] == [before]
    assert min(info["retries"].values()) >= 1
    assert info["catchup"] is False and info["max_active_runs"] == 1 and info["schedule"] == "0 3 * * 1"
    assert info["run_immediately"] is False  # enabling the DAG does not start a run for a past slot
    assert info["params"] == sorted(
        [
            "data_source",
            "retrieval_epochs",
            "ranking_epochs",
            "training_workers",
            "promotion_tolerance",
            "promote",
            "dvc_push",
        ]
    )
    assert all(f"`{task}`" in info["doc"] for task in TASKS)  # the docs say what each task does


def _file_digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_airflow_dags_test_runs_the_pipeline_and_keeps_dvc_in_step(tmp_path: Path, csv_dataset: Path) -> None:
    project, env = make_dvc_project(tmp_path, csv_dataset)
    airflow = str(Path(sys.executable).parent / "airflow")
    env = _airflow_env(tmp_path / "home", project, env)
    env.pop("MOVIEREC_PUSHGATEWAY", None)
    comments = "# a comment the trigger form must keep\n"
    (project / "params.yaml").write_text(comments + (project / "params.yaml").read_text())
    run([airflow, "db", "migrate"], project, env)
    form = {"retrieval_epochs": 1, "dvc_push": True}
    out = run([airflow, "dags", "test", "ml_pipeline_dag", "-c", json.dumps(form)], project, env)
    assert "state=success" in out.stdout + out.stderr
    remote = tmp_path / "remote"  # the project's default DVC remote received every output
    assert remote.is_dir() and sum(1 for p in remote.rglob("*") if p.is_file()) > 50

    registered = json.loads((project / "reports" / "registry.json").read_text())
    assert registered["version"] == 1  # an MLflow run and a model version in the project's store
    params = (project / "params.yaml").read_text()
    assert params.startswith(comments)  # the form's value went into params.yaml, comments kept
    settings = yaml.safe_load(params)
    assert settings["retrieval"]["epochs"] == 1
    assert settings["tune"]["retrieval"]["space"]["epochs"] == {"choices": [1]}  # the search keeps to it
    timings = sorted(p.stem for p in (project / "reports" / "timings").glob("*.json"))
    assert {"fetch", "train_retrieval", "train_ranking", "evaluate", "register"} <= set(timings)
    # the DAG recorded every stage in dvc.lock: DVC and the DAG agree, nothing to redo
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    assert "Running stage" not in run(["dvc", "repro"], project, env).stdout

    # a rerun of a task recomputes the same outputs and leaves the lock consistent
    split_before = _file_digests(project / "data" / "split")
    recs_before = _file_digests(project / "data" / "recs" / "ranking")
    for task in ("preprocessing", "train_ranking"):
        run([airflow, "tasks", "test", "ml_pipeline_dag", task], project, env)
    assert _file_digests(project / "data" / "split") == split_before
    assert _file_digests(project / "data" / "recs" / "ranking") == recs_before
    assert "up to date" in run(["dvc", "status"], project, env).stdout  # the saved models too, byte for byte
    # and `dvc repro` (through the CLI) writes the very bytes the DAG wrote: the two never fight
    served = _file_digests(project / "checkpoints" / "ranking")
    run(["dvc", "repro", "--force", "--single-item", "train_ranking"], project, env)
    assert _file_digests(project / "checkpoints" / "ranking") == served
    assert "up to date" in run(["dvc", "status"], project, env).stdout


def test_a_bad_form_value_stops_before_anything_runs(tmp_path: Path, csv_dataset: Path) -> None:
    from movierec.errors import ParamsError
    from movierec.orchestration.tasks import run_task

    project, _ = make_dvc_project(tmp_path, csv_dataset)
    before = (project / "params.yaml").read_text()
    with pytest.raises(ParamsError, match="registry.tolerance"):
        run_task("data_retrieval", {"promotion_tolerance": 7}, project)
    assert (project / "params.yaml").read_text() == before  # the file is left as it was
    assert not (project / "data").exists()
    with pytest.raises(ParamsError, match="unknown task"):
        run_task("train_everything", {}, project)


def _start(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    if not wait_until(predicate, timeout, interval=2):
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_make_airflow_then_a_rest_trigger_runs_registers_and_pushes(tmp_path: Path, csv_dataset: Path) -> None:
    gateway_binary = shutil.which("prometheus-pushgateway")
    if gateway_binary is None:
        if os.environ.get("MOVIEREC_REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus-pushgateway is not installed (make test installs it)")
        pytest.skip("prometheus-pushgateway is not installed; `make test` installs it")
    project, env = make_dvc_project(tmp_path, csv_dataset)
    api_port, gateway_port = free_port(), free_port()
    home = tmp_path / "airflow-home"
    gateway = f"127.0.0.1:{gateway_port}"
    env = {**env, "MOVIEREC_PUSHGATEWAY": gateway}
    for key in [k for k in env if k.startswith("AIRFLOW")]:
        env.pop(key)
    pushgateway = _start(  # its own persistence file: Debian's default is shared machine-wide
        [gateway_binary, f"--web.listen-address={gateway}", f"--persistence.file={tmp_path / 'gateway.data'}"],
        env,
        tmp_path / "gateway.log",
        tmp_path,
    )
    standalone = _start(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "airflow",
            f"AIRFLOW_PORT={api_port}",
            f"AIRFLOW_HOME_DIR={home}",
            f"PROJECT_DIR={project}",
        ],
        env,
        tmp_path / "standalone.log",
        ROOT,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        password_file = home / "simple_auth_manager_passwords.json.generated"

        def token() -> str | None:
            if not password_file.exists():
                return None
            try:
                reply = httpx.post(
                    f"{base}/auth/token",
                    json={"username": "admin", "password": json.loads(password_file.read_text())["admin"]},
                    timeout=5,
                )
            except (httpx.HTTPError, ValueError, KeyError):
                return None
            return reply.json().get("access_token") if reply.status_code in (200, 201) else None

        _wait(lambda: token() is not None, 240, "the Airflow API and its admin password", tmp_path / "standalone.log")
        headers = {"Authorization": f"Bearer {token()}"}

        def parsed() -> bool:
            return httpx.get(f"{base}/api/v2/dags/ml_pipeline_dag", headers=headers, timeout=5).status_code == 200

        _wait(parsed, 180, "the DAG to be parsed", tmp_path / "standalone.log")
        bad = httpx.post(
            f"{base}/api/v2/dags/ml_pipeline_dag/dagRuns",
            headers=headers,
            json={"logical_date": None, "conf": {"ranking_epochs": 0}},
            timeout=30,
        )
        assert bad.status_code == 400 and "ranking_epochs" in bad.text  # the form is validated by Airflow
        started = time.monotonic()
        reply = httpx.post(
            f"{base}/api/v2/dags/ml_pipeline_dag/dagRuns",
            headers=headers,
            json={"logical_date": None, "conf": {"ranking_epochs": 1}},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        run_id = reply.json()["dag_run_id"]
        state_url = f"{base}/api/v2/dags/ml_pipeline_dag/dagRuns/{run_id}"

        def finished() -> bool:
            return httpx.get(state_url, headers=headers, timeout=10).json()["state"] in ("success", "failed")

        _wait(finished, 900, "the DAG run", tmp_path / "standalone.log")
        state = httpx.get(state_url, headers=headers, timeout=10).json()["state"]
        tasks = httpx.get(f"{state_url}/taskInstances", headers=headers, timeout=10).json()["task_instances"]
        states = {t["task_id"]: t["state"] for t in tasks}
        assert state == "success", states
        print(f"DAG run over REST: {time.monotonic() - started:.0f} s; tasks {states}")
        assert states["push_metrics"] == "success" and states["dvc_push"] == "skipped"
        runs = httpx.get(f"{base}/api/v2/dags/ml_pipeline_dag/dagRuns", headers=headers, timeout=10).json()
        assert runs["total_entries"] == 1  # enabling the DAG started no scheduled run of its own
        registered = json.loads((project / "reports" / "registry.json").read_text())
        assert registered["version"] == 1
        assert yaml.safe_load((project / "params.yaml").read_text())["ranking"]["epochs"] == 1
        pushed = httpx.get(f"http://{gateway}/metrics", timeout=5).text
        for line in (
            'model_version{alias="registered",dataset="tiny-latest",instance="",job="movierec_training"} 1',
            'training_duration_seconds{dataset="tiny-latest",instance="",job="movierec_training",stage="register"}',
            'ranking_ndcg{dataset="tiny-latest",instance="",job="movierec_training"}',
        ):
            assert line in pushed, line
    finally:
        stop_process_group(standalone)
        stop_process_group(pushgateway)

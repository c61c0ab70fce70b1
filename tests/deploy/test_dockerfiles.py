"""The two Dockerfiles, checked without a Docker engine: hadolint, the images' shape (multi-stage,
slim Python 3.11, non-root, health checks), what they copy, how they install the stack, their
settings, and their health-check commands run for real against a stand-in server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_files import (
    DOCKERFILES,
    PIPELINE_DOCKERFILE,
    ROOT,
    SERVICE_DOCKERFILE,
    airflow_variable_problems,
    dockerignore_patterns,
    in_a_fresh_clone,
    is_ignored,
    parse_dockerfile,
    run_tool,
    stub_server,
    with_port,
)

from movierec.serving.settings import Settings

IDS = [p.relative_to(ROOT).as_posix() for p in DOCKERFILES]
SERVICE_PORT = 8000
AIRFLOW_PORT = 8080


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_reports_nothing(dockerfile: Path) -> None:
    result = run_tool("hadolint", "--no-color", "--format", "json", str(dockerfile.relative_to(ROOT)))
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], json.dumps(findings, indent=1) + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    """The negative control: a Dockerfile with the usual mistakes is reported (the tool runs and reads files)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nRUN cd /tmp && pip install requests\n", encoding="utf-8")
    result = run_tool("hadolint", "--no-color", "--format", "json", str(bad))
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"DL3006", "DL3008", "DL3013"} <= codes, codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_every_hadolint_ignore_says_why(dockerfile: Path) -> None:
    """An ignored rule is named in a comment above the ignore line that gives the reason."""
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint\s+ignore=(\S+)", line.strip())
        if not match:
            continue
        reason = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            reason.insert(0, previous)
        text = " ".join(reason)
        assert len(text) > 40, f"{dockerfile.name}:{number + 1}: ignore without a reason above it"
        for code in match.group(1).split(","):
            assert code in text, f"{dockerfile.name}:{number + 1}: the comment above does not name {code}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_images_are_multi_stage_slim_and_non_root(dockerfile: Path) -> None:
    parsed = parse_dockerfile(dockerfile)
    bases = parsed.external_bases()
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", b) for b in bases), bases
    build = parsed.stage("build")
    assert len(parsed.stages) >= 2 and build is not parsed.final
    final_chain = parsed.lineage()
    assert build not in final_chain, "the final image must not be the build stage"
    copies = [i for s in final_chain for i in s.all("COPY") if i.flags().get("from") == "build"]
    assert copies, "the final image copies the environment from the build stage"
    assert not any(i.keyword == "RUN" and "pip install" in i.args for s in final_chain for i in s.instructions)
    user = parsed.effective("USER")
    assert user is not None
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user.args}: a numeric, non-root uid"
    assert parsed.effective("HEALTHCHECK") is not None
    assert parsed.effective("EXPOSE") is not None


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_the_stack_is_installed_as_make_install_does(dockerfile: Path) -> None:
    """requirements.txt with constraints.txt, movierec itself without dependencies, then pip check."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -r requirements.txt -c constraints.txt" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile and "$(BIN)/pip check" in makefile
    runs = " && ".join(i.args for i in parse_dockerfile(dockerfile).stage("build").all("RUN"))
    assert "pip install -r requirements.txt -c constraints.txt" in runs
    assert re.search(r"pip install --no-deps (-e )?\. && pip check", runs), runs


def test_both_images_share_the_stack_layers() -> None:
    """The build stages are the same instructions up to the stack's install, so the second image
    reuses the first one's cached ~3 GB layer."""
    service, pipeline = (parse_dockerfile(p).stage("build").instructions for p in DOCKERFILES)

    def up_to_stack(instructions):
        head = []
        for instruction in instructions:
            head.append((instruction.keyword, instruction.args))
            if instruction.keyword == "RUN" and "requirements.txt" in instruction.args:
                return head
        raise AssertionError("no RUN installs requirements.txt")

    assert up_to_stack(service) == up_to_stack(pipeline)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_what_the_images_copy_is_in_the_context(dockerfile: Path) -> None:
    """Every COPY source from the build context is in a fresh clone and not left out by .dockerignore."""
    patterns = dockerignore_patterns()
    for stage in parse_dockerfile(dockerfile).stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags():
                continue
            words = [w for w in copy.args.split() if not w.startswith("--")]
            for source in words[:-1]:
                if source == ".":
                    continue
                assert in_a_fresh_clone(source), f"{dockerfile.name}:{copy.line}: {source} is not in the repository"
                assert not is_ignored(source, patterns), (
                    f"{dockerfile.name}:{copy.line}: .dockerignore leaves out {source}"
                )


def test_dockerignore_leaves_out_generated_files() -> None:
    patterns = dockerignore_patterns()
    for path in (
        "data/raw/ml-100k.zip",
        "checkpoints/manifest.json",
        "mlruns/0/meta.yaml",
        "mlflow/mlflow.db",
        ".venv/bin/python",
        ".git/HEAD",
        ".dvc/cache/files/md5/ab/cdef",
        ".quick/params.yaml",
        "src/movierec.egg-info/PKG-INFO",
        "src/movierec/__pycache__/cli.cpython-311.pyc",
    ):
        assert is_ignored(path, patterns), path
    for path in ("src/movierec/cli.py", "requirements.txt", "dvc.yaml", ".dvc/config", "dags/ml_pipeline_dag.py"):
        assert not is_ignored(path, patterns), path


def test_service_image_serves_on_one_port_with_its_settings() -> None:
    parsed = parse_dockerfile(SERVICE_DOCKERFILE)
    expose = parsed.effective("EXPOSE")
    entrypoint, cmd = parsed.effective("ENTRYPOINT"), parsed.effective("CMD")
    assert expose and entrypoint and cmd
    argv = entrypoint.exec_form() + cmd.exec_form()
    assert argv[:2] == ["movierec", "serve"]
    assert argv[argv.index("--port") + 1] == expose.args == str(SERVICE_PORT)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    health = parsed.effective("HEALTHCHECK").exec_form()
    assert f"http://127.0.0.1:{SERVICE_PORT}/ready" in " ".join(health)
    env = parsed.effective_env()
    fields = {f"MOVIEREC_{name.upper()}" for name in Settings.model_fields}
    movierec = {k: v for k, v in env.items() if k.startswith("MOVIEREC_")}
    assert movierec and set(movierec) <= fields, set(movierec) - fields
    # the service's writable state lives in the declared volume
    volume = json.loads(parsed.effective("VOLUME").args)[0]
    for name in ("MOVIEREC_DATABASE_PATH", "MOVIEREC_MODEL_CACHE_DIR"):
        assert Path(movierec[name]).is_relative_to(volume), name


def test_service_image_bundle_is_mounted_or_baked_by_build_arg() -> None:
    parsed = parse_dockerfile(SERVICE_DOCKERFILE)
    bundle_dir = parsed.effective_env()["MOVIEREC_BUNDLE_DIR"]
    names = {s.name for s in parsed.stages}
    assert parsed.final.base == "bundle-${BUNDLE}"
    assert {f"bundle-{choice}" for choice in ("mounted", "baked")} <= names
    assert parsed.global_args["BUNDLE"] == "mounted"
    (baked,) = parsed.stage("bundle-baked").all("COPY")
    assert baked.flags()["from"] == "bundle" and baked.args.split()[-1].rstrip("/") == bundle_dir
    assert parsed.stage("bundle").base == "scratch"  # empty unless --build-context bundle=DIR
    for choice in ("mounted", "baked"):
        parsed.global_args["BUNDLE"] = choice
        assert parsed.lineage()[1].name == f"bundle-{choice}"
        assert parsed.effective_env()["MOVIEREC_BUNDLE_DIR"] == bundle_dir


def test_pipeline_image_runs_airflow_on_the_mounted_project() -> None:
    parsed = parse_dockerfile(PIPELINE_DOCKERFILE)
    env = parsed.effective_env()
    assert airflow_variable_problems(env) == []
    project = env["MOVIEREC_PROJECT_DIR"]
    assert parsed.effective("WORKDIR").args == project
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{project}/dags" and in_a_fresh_clone("dags/ml_pipeline_dag.py")
    port = int(env["AIRFLOW__API__PORT"])
    assert port == AIRFLOW_PORT and str(port) in parsed.effective("EXPOSE").args.split()
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert f"http://127.0.0.1:{port}/api/v2/monitor/health" in " ".join(parsed.effective("HEALTHCHECK").exec_form())
    assert parsed.effective("CMD").exec_form() == ["airflow", "standalone"]
    # the editable install points at the project folder the checkout is mounted on
    build = parse_dockerfile(PIPELINE_DOCKERFILE).stage("build")
    assert build.all("WORKDIR")[-1].args == project
    assert any("pip install --no-deps -e ." in r.args for r in build.all("RUN"))
    # git for DVC, trusted on the mounted checkout whoever owns it
    runs = " ".join(r.args for r in parsed.final.all("RUN"))
    assert "install -y --no-install-recommends git" in runs
    assert f"safe.directory {project}" in runs


def test_airflow_variable_check_knows_a_wrong_name() -> None:
    assert airflow_variable_problems({"AIRFLOW__CORE__DAGS_FOLDER": "x", "AIRFLOW__CORE__DAG_FOLDER": "x"}) == [
        "AIRFLOW__CORE__DAG_FOLDER"
    ]


@pytest.mark.parametrize(
    ("dockerfile", "port", "path"),
    [(SERVICE_DOCKERFILE, SERVICE_PORT, "/ready"), (PIPELINE_DOCKERFILE, AIRFLOW_PORT, "/api/v2/monitor/health")],
    ids=IDS,
)
def test_health_check_command_follows_the_answer(dockerfile: Path, port: int, path: str) -> None:
    """The HEALTHCHECK command itself, run against a stand-in server: healthy on 200, unhealthy on
    503 and when nothing listens."""
    argv = parse_dockerfile(dockerfile).effective("HEALTHCHECK").exec_form()
    assert argv[0] == "python"

    def run(on_port: int) -> int:
        command = with_port(argv, port, on_port)[1:]
        return subprocess.run([sys.executable, *command], capture_output=True, timeout=30).returncode

    with stub_server({path: 200}) as stub:
        assert run(stub) == 0
    with stub_server({path: 503}) as stub:
        assert run(stub) != 0
    assert run(stub) != 0  # the stand-in is closed: nothing listens there any more

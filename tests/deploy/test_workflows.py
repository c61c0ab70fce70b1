"""The GitHub Actions workflows: actionlint (with shellcheck on every run: script) and the
workflow JSON schema, what each job runs, and the DVC job's scripts run for real in a fresh
clone of this repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_files import (
    ROOT,
    WORKFLOWS,
    load_compose,
    run_tool,
    tool,
    tool_env,
)

WORKFLOW_FILES = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _workflow(name: str = "ci.yml") -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _steps(job: str) -> list[dict]:
    return _workflow()["jobs"][job]["steps"]


def _runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in _steps(job))


def test_there_are_workflows() -> None:
    assert "ci.yml" in [p.name for p in WORKFLOW_FILES]


def test_actionlint_reports_nothing() -> None:
    tool("shellcheck")  # actionlint runs it on every run: script when it is on PATH
    result = run_tool("actionlint", "-no-color", *(str(p.relative_to(ROOT)) for p in WORKFLOW_FILES))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_is_really_checking(tmp_path: Path) -> None:
    """The negative control: a shell mistake (shellcheck's SC2086), an unknown context and an
    unknown runner are all reported."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-lattest\n    steps:\n"
        "      - run: echo ${{ secretz.TOKEN }}\n      - run: cp $1 $2\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [tool("actionlint"), "-no-color", ".github/workflows/bad.yml"],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    for expected in ("SC2086", "secretz", "ubuntu-lattest"):
        assert expected in result.stdout, (expected, result.stdout)


@pytest.mark.parametrize("workflow", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_matches_the_github_workflow_schema(workflow: Path) -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "bad.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs_on: ubuntu-latest\n    steps: {}\n", encoding="utf-8")
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(broken))
    assert result.returncode != 0


def test_the_jobs() -> None:
    workflow = _workflow()
    assert set(workflow["jobs"]) == {"test", "docker", "dvc"}
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}


def test_test_job_is_the_ci_entry_point() -> None:
    """The test job runs .ci/run, which runs `make test`, with the Python the project requires."""
    assert [s["run"] for s in _steps("test") if "run" in s] == ["bash .ci/run"]
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "make test" in commands
    python = next(s for s in _steps("test") if s.get("uses", "").startswith("actions/setup-python@"))
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert python["with"]["python-version"] == requires.group(1)


def test_docker_job_builds_every_image_of_the_compose_file() -> None:
    runs = _runs("docker")
    built = set(re.findall(r"docker buildx build --file (\S+)", runs))
    compose = load_compose()
    wanted = {s["build"].get("dockerfile", "Dockerfile") for s in compose["services"].values() if "build" in s}
    assert built == wanted == {"Dockerfile", "docker/pipeline.Dockerfile"}
    assert any(s.get("uses", "").startswith("docker/setup-buildx-action@") for s in _steps("docker"))
    assert "docker compose config --quiet" in runs  # the real Compose parses the file too


def test_dvc_job_pulls_dry_runs_and_diffs_metrics() -> None:
    steps = _steps("dvc")
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # `main` must be there for the diff
    runs = _runs("dvc")
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("dvc=="))
    assert "grep -E '^dvc==' requirements.txt" in runs and "-c constraints.txt" in runs and pin
    assert re.search(r"^\s*dvc pull$", runs, re.M)
    assert "dvc repro --dry" in runs
    assert "dvc metrics diff main" in runs


def _github_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run: step as GitHub runs it on Linux (bash --noprofile --norc -eo pipefail)."""
    path = cwd.parent / "step.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _expressions(text: str, outputs: dict[str, dict[str, str]]) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        found = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        assert found, f"this test does not evaluate ${{{{ {expression} }}}}"
        return outputs.get(found.group(1), {}).get(found.group(2), "")

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _read_outputs(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line]
    return dict(pairs)


@pytest.mark.integration
def test_dvc_job_runs_in_a_fresh_clone(tmp_path: Path) -> None:
    """Every run: step of the DVC job after the install, in a fresh clone of this repository
    (committed files only): the default remote is a local folder that does not exist here, so the
    pull is skipped with its notice; the dry run and the metrics diff against main succeed."""
    clone = tmp_path / "work" / "movierec"
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run(["git", "checkout", "--quiet", "-B", "main"], cwd=clone, check=True)
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = {**tool_env(), "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output), "CI": "true"}
    outputs: dict[str, dict[str, str]] = {}
    logs = {}
    for step in _steps("dvc"):
        if "run" not in step or "pip install" in step["run"]:
            continue
        output.write_text("", encoding="utf-8")
        step_env = {**env, **{k: _expressions(str(v), outputs) for k, v in (step.get("env") or {}).items()}}
        result = _github_shell(_expressions(step["run"], outputs), clone, step_env)
        assert result.returncode == 0, (step["name"], result.stdout, result.stderr)
        outputs[step.get("id", step["name"])] = _read_outputs(output)
        logs[step.get("id", step["name"])] = result.stdout + result.stderr
    assert outputs["pull"] == {"pulled": "false"}
    assert "::notice title=dvc pull skipped::" in logs["pull"] and "does not exist on this runner" in logs["pull"]
    assert "### dvc metrics diff main" in summary.read_text(encoding="utf-8")


@pytest.mark.integration
def test_dvc_pull_step_pulls_when_the_remote_is_there(tmp_path: Path) -> None:
    """With the default remote's folder present, the step runs `dvc pull` (which fails here: the
    empty folder holds none of the outputs) instead of skipping."""
    clone = tmp_path / "work" / "movierec"
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    remote = subprocess.run(
        ["dvc", "config", "remote.local.url"], cwd=clone, env=tool_env(), capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(remote).is_absolute() and Path(remote).parent == clone.parent  # beside the checkout
    Path(remote).mkdir(parents=True)
    pull = next(s for s in _steps("dvc") if s.get("id") == "pull")
    output = tmp_path / "output.txt"
    result = _github_shell(pull["run"], clone, {**tool_env(), "GITHUB_OUTPUT": str(output)})
    assert "dvc pull skipped" not in result.stdout
    assert result.returncode != 0 and not output.exists()
    assert "failed to pull data" in result.stderr.lower() or "missing" in result.stderr.lower(), result.stderr

"""``movierec scale run``: the whole pipeline on synthetic data of a given size, each stage measured.

The run never touches the project it starts from. In a working folder of its own it

1. lays out a fresh project: the code, ``dvc.yaml`` and ``params.yaml`` of the project's
   last commit (or of its working tree), the profile (default ``scale``) laid over the
   parameters and ``data.source`` pointed at the synthetic data; git and DVC initialised;
2. writes the synthetic dataset (``movierec data synth``, measured as stage ``synth``);
3. runs every stage of ``dvc.yaml`` in pipeline order, one ``dvc repro --single-item`` each,
   under :func:`measured` (the DVC cache takes outputs by hard link: nothing is copied);
4. checks that ``dvc status`` finds the pipeline up to date, as after a plain ``dvc repro``.

Every stage's wall time and peak memory go to the run's JSON as soon as it ends, so a run
that is stopped keeps what it measured, and ``--resume`` carries on from the first stage
that has not finished. The stages run the project copy's code (``PYTHONPATH``), so later
edits to the project do not reach a run in progress.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from movierec.errors import DataError, ParamsError
from movierec.io import read_json, write_json
from movierec.scaling.measure import measured

# ML-25M's shape: users and items grow with the events in these proportions
ML25M = {"events": 25_000_000, "users": 160_000, "items": 60_000}
CODE = ("src", "dvc.yaml", "params.yaml", "profiles")


@dataclass(frozen=True)
class ScaleRun:
    """One run's size and setup.

    Attributes:
        events: ratings to generate.
        work: the run's working folder (the project copy, data, logs and the JSON go here).
        users: users (default: ML-25M's users per event, about 1 per 156 events).
        items: catalogue size (default: ML-25M's items per event, and at least four times
            the events per user, so no user exhausts the catalogue).
        seed: the synthetic data's seed.
        profile: ``profiles/<name>.yaml`` laid over ``params.yaml``; None for none.
        stages: the ``dvc.yaml`` stages to run (default: all, in pipeline order).
        worktree: take the code from the project's working tree instead of its last commit.
        resume: keep what the run's JSON recorded and run only the stages not yet done.
        refresh_code: with ``resume``, copy the project's code (``src/``) again before carrying
            on (each stage records the commit it ran with; DVC re-runs a finished stage only if
            its own code changed).
        source: a dataset for ``data.source`` instead of synthetic data (``ml-100k``, a
            folder), to measure a real dataset the same way; ``events`` is then a label.
    """

    events: int
    work: Path
    users: int | None = None
    items: int | None = None
    seed: int = 0
    profile: str | None = "scale"
    stages: tuple[str, ...] | None = None
    worktree: bool = False
    resume: bool = False
    source: str | None = None
    refresh_code: bool = False

    def sizes(self) -> tuple[int, int]:
        """``(users, items)`` for the run."""
        users = self.users or max(1, round(self.events * ML25M["users"] / ML25M["events"]))
        items = self.items or max(
            20, round(self.events * ML25M["items"] / ML25M["events"]), math.ceil(4 * self.events / users)
        )
        return users, items


def run_scale(run: ScaleRun, project: Path = Path("."), out: Path | None = None) -> dict[str, Any]:
    """Lay out the project copy, write the data, run and measure every stage.

    Args:
        run: the size and setup.
        project: the project to copy (its root).
        out: the run's JSON (default: ``<work>/scale.json``), rewritten after each stage.

    Returns:
        The run's record: sizes, machine, code, each stage's measurement, totals and status.

    Raises:
        DataError: the working folder holds another run (without ``resume``).
    """
    work = Path(run.work).resolve()
    out = Path(out or work / "scale.json").resolve()
    repo, dataset, logs = work / "repo", work / "dataset", work / "logs"
    users, items = run.sizes()
    if run.resume and out.exists():
        record = read_json(out)
        if run.refresh_code:
            record.setdefault("code_history", []).append(record["code"])
            record["code"] = _copy_code(Path(project).resolve(), repo, run, ("src",))
            write_json(out, record)
    else:
        if repo.exists():
            raise DataError("the working folder already holds a run; pass --resume or choose another", path=work)
        record = {
            "events_target": run.events,
            "users_target": users,
            "items_target": items,
            "seed": run.seed,
            "profile": run.profile,
            "machine": machine(),
            "code": _lay_out(Path(project).resolve(), repo, run, run.source or str(dataset)),
            "command": " ".join(sys.argv),
            "work": str(work),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": {},
            "status": "running",
        }
        write_json(out, record)
    env = _environment(repo)
    if run.source is not None:
        record["dataset"] = {"source": run.source, "synthetic": False}
    elif "synth" not in record["stages"] or record["stages"]["synth"]["returncode"] != 0:
        command = ["movierec", "data", "synth", "--users", str(users), "--items", str(items)]
        command += ["--events", str(run.events), "--seed", str(run.seed), "--out", str(dataset)]
        if not _step(record, out, "synth", command, repo, env, logs):
            return record
        record["dataset"] = read_json(dataset / "synth.json")
    order = pipeline_order(yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8")))
    unknown = sorted(set(run.stages or ()) - set(order))
    if unknown:
        raise ParamsError(f"--stages: {', '.join(unknown)} not in dvc.yaml (stages: {', '.join(order)})")
    for stage in [s for s in order if not run.stages or s in run.stages]:
        done = record["stages"].get(stage)
        if done and done["returncode"] == 0:
            continue
        command = ["dvc", "repro", "--single-item", stage]
        if not _step(record, out, stage, command, repo, env, logs):
            return record
    split_report = repo / "reports" / "split.json"
    if run.source is not None and split_report.exists():
        counts = read_json(split_report)
        record["dataset"]["ratings"] = sum(int(counts[f"{p}_interactions"]) for p in ("train", "valid", "test"))
    status = subprocess.run(["dvc", "status"], cwd=repo, env=env, capture_output=True, text=True)
    record["dvc_status"] = (status.stdout.strip() or status.stderr.strip())[-2000:]
    record["up_to_date"] = status.returncode == 0 and "up to date" in status.stdout
    record["status"] = "complete"
    record["partial"] = bool(run.stages)  # only some stages were asked for
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(out, record)
    return record


def _step(
    record: dict[str, Any], out: Path, name: str, command: list[str], repo: Path, env: dict[str, str], logs: Path
) -> bool:
    """Run one measured step; record it (and the totals) in ``out``; False when it failed."""
    log = logs / f"{name}.log"
    print(f"[scale] {name}: {' '.join(command)} (log: {log})", file=sys.stderr, flush=True)
    result = measured(command, repo, env, log).as_dict()
    result["load_average"] = round(os.getloadavg()[0], 2)  # the machine's load as it ended (others' jobs too)
    result["commit"] = record["code"]["commit"]
    timing = repo / "reports" / "timings" / f"{name}.json"
    if timing.exists() and name != "synth":
        result["stage_s"] = read_json(timing)["seconds"]  # the stage's own time, inside DVC's
    record["stages"][name] = result
    pipeline = [v for k, v in record["stages"].items() if k != "synth"]
    record["pipeline_wall_s"] = round(sum(v["wall_s"] for v in pipeline), 2)
    record["max_peak_rss_mb"] = max(v["peak_rss_mb"] for v in record["stages"].values())
    ok = result["returncode"] == 0
    if not ok:
        record["status"] = "failed"
        record["failed_stage"] = name
        record["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    write_json(out, record)
    print(
        f"[scale] {name}: {result['wall_s']:.1f}s, peak {result['peak_rss_mb'] / 1024:.2f} GB"
        + ("" if ok else f", FAILED (exit {result['returncode']}; see {log})"),
        file=sys.stderr,
        flush=True,
    )
    return ok


def pipeline_order(dvc: dict[str, Any]) -> list[str]:
    """``dvc.yaml``'s stages in an order that runs each after the stages whose outputs it
    reads (file order among the independent ones)."""
    stages = dvc.get("stages") or {}
    outs = {name: _paths(spec, ("outs", "metrics", "plots")) for name, spec in stages.items()}
    needs = {
        name: {
            other
            for dep in _paths(spec, ("deps",))
            for other, produced in outs.items()
            if other != name and any(_overlap(dep, o) for o in produced)
        }
        for name, spec in stages.items()
    }
    order: list[str] = []
    while len(order) < len(stages):
        ready = [n for n in stages if n not in order and needs[n] <= set(order)]
        if not ready:
            raise DataError(f"dvc.yaml: the stages {sorted(set(stages) - set(order))} depend on each other in a cycle")
        order.append(ready[0])
    return order


def _paths(spec: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    found = []
    for key in keys:
        for entry in spec.get(key) or []:
            found += list(entry) if isinstance(entry, dict) else [str(entry)]
    return [p.rstrip("/") for p in found]


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def machine() -> dict[str, Any]:
    """The machine a run measures: cores, memory, CPU model, load when it started."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _lay_out(project: Path, repo: Path, run: ScaleRun, dataset: str) -> dict[str, Any]:
    """The project copy: code and pipeline, the parameters for this run, git and DVC."""
    from movierec.params import load_params
    from movierec.settings import validate_params

    repo.mkdir(parents=True)
    code = _copy_code(project, repo, run, CODE)
    params = load_params(repo / "params.yaml", run.profile)
    params["data"]["source"] = dataset
    validate_params(params, f"params.yaml with profile {run.profile}")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (repo / ".gitignore").write_text("/checkpoints/\n/data/\n/mlflow/\n/reports/\n", encoding="utf-8")
    env = _environment(repo)
    for command in (
        ["git", "init", "-q"],
        [
            "git",
            "-c",
            "user.email=scale@movierec",
            "-c",
            "user.name=scale",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "scale run",
        ],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        ["dvc", "config", "cache.type", "hardlink"],  # outputs go into the cache by a link, not a copy
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return code


def _copy_code(project: Path, repo: Path, run: ScaleRun, names: tuple[str, ...]) -> dict[str, Any]:
    """Copy ``names`` (replacing them) from the project's last commit or working tree."""
    for name in names:
        target = repo / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if run.worktree:
        for name in names:
            source = project / name
            if source.is_dir():
                shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif source.exists():
                shutil.copy2(source, repo / name)
    else:
        archive = repo / ".code.tar"
        subprocess.run(["git", "archive", "-o", str(archive), "HEAD", *names], cwd=project, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(repo, filter="data")
        archive.unlink()
    dirty = (
        bool(_git(project, "status", "--porcelain", "--untracked-files=no", "--", *names)) if run.worktree else False
    )
    return {
        "commit": _git(project, "rev-parse", "HEAD"),
        "from": "working tree" if run.worktree else "last commit",
        "dirty": dirty,
    }


def _environment(repo: Path) -> dict[str, str]:
    """The stages' environment: this interpreter's tools first, the copy's code on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MOVIEREC_PUSHGATEWAY")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo / "src")
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _git(project: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""

"""A training stage on several workers: ``movierec train retrieval --workers N`` (or ``--hosts``).

Not a DVC stage of its own: it runs ``train_retrieval`` or ``train_ranking`` as a cluster of
worker processes (:mod:`movierec.orchestration.worker`), each with its ``TF_CONFIG``, and
waits for them (:func:`movierec.orchestration.launcher.launch`). The workers train every
model together under ``MultiWorkerMirroredStrategy``; the chief (worker 0) writes the
stage's outputs exactly where the one-process stage writes them, so DVC, the DAG and the
evaluation see no difference. On one machine the workers talk over loopback ports; on
several hosts, each host runs this with the full address list and its own index.

If a worker fails, the others are stopped and the outputs are left as they were before the
run: the chief writes every output atomically (:mod:`movierec.io`), and the temporary files
a killed chief could not remove are removed here.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from movierec.errors import ParamsError
from movierec.orchestration.cluster import loopback_cluster
from movierec.orchestration.launcher import launch
from movierec.orchestration.worker import write_spec
from movierec.paths import ProjectPaths
from movierec.settings import Settings
from movierec.stages.workers import SCRATCH_ENV

TRAINING_STAGES = ("train_retrieval", "train_ranking")
# the temporary names of movierec.io's atomic writes and of models.train.publish
TEMPORARY_MARKERS = (".tmp-", "-staging-", ".old-")


def run(
    settings: Settings,
    paths: ProjectPaths,
    stage: str,
    workers: int = 2,
    hosts: list[str] | None = None,
    index: int = 0,
    log: IO[str] | None = None,
) -> dict[str, Any]:
    """Run a training stage as a cluster of workers and wait for it.

    Args:
        settings: the checked settings every worker trains with.
        paths: the project layout (the inputs every worker reads; the chief writes the outputs).
        stage: ``train_retrieval`` or ``train_ranking``.
        workers: the number of workers to start on this machine, on free loopback ports
            (when ``hosts`` is None). One worker runs the stage as one process does.
        hosts: every worker's ``host:port``, worker 0 (the chief) first, for a cluster of
            several hosts: this machine starts only worker ``index``.
        index: this machine's worker in ``hosts``.
        log: where the workers' prefixed output goes (default: stderr).

    Returns:
        ``stage``, ``addresses`` (every worker), ``local`` (the workers run here),
        ``chief_here`` (whether this machine wrote the outputs) and ``seconds``.

    Raises:
        ParamsError: an unknown stage, no workers, or an index outside ``hosts``.
        WorkerFailed: a worker failed (named, with its last log lines); the others were
            stopped and this machine's outputs are as they were.
    """
    if stage not in TRAINING_STAGES:
        raise ParamsError(f"only {' and '.join(TRAINING_STAGES)} train on several workers, not {stage!r}")
    if hosts:
        if not 0 <= index < len(hosts):
            raise ParamsError(f"--index {index} is not a worker of the {len(hosts)} hosts given")
        addresses, local = list(hosts), [index]
    else:
        addresses, local = loopback_cluster(workers), list(range(workers))
    started_wall, started = time.time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="movierec-cluster-") as scratch:
        spec = write_spec(Path(scratch) / "spec.json", stage, settings, paths)
        env = {**os.environ, SCRATCH_ENV: str(Path(scratch) / "workers")}
        command = [sys.executable, "-m", "movierec.orchestration.worker", str(spec)]
        try:
            launch(command, addresses, local, env=env, log=log)
        except BaseException:
            outputs = importlib.import_module(f"movierec.stages.{stage}").OUTPUTS
            remove_leftovers([Path(getattr(paths, name)) for name in outputs], started_wall)
            raise
    return {
        "stage": stage,
        "addresses": addresses,
        "local": local,
        "chief_here": 0 in local,
        "seconds": round(time.perf_counter() - started, 2),
    }


def remove_leftovers(folders: list[Path], since: float) -> list[Path]:
    """Remove the temporary entries that atomic writes under ``folders`` left behind since
    ``since`` (a killed process cannot remove its own); an output moved aside for its
    replacement (``.NAME.old-PID``) goes back to ``NAME`` if the replacement never arrived.

    Returns:
        The entries removed or restored.
    """
    handled = []
    for folder in dict.fromkeys(p for f in folders for p in (f.parent, f)):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            name = entry.name
            if not name.startswith(".") or not any(m in name for m in TEMPORARY_MARKERS):
                continue
            original = folder / name[1:].rsplit(".old-", 1)[0] if ".old-" in name else None
            if original is None and entry.lstat().st_mtime < since - 1.0:
                continue  # a temporary older than this run: not ours
            if original is not None and not original.exists():
                entry.rename(original)  # (a renamed folder keeps its old time: checked by name)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            handled.append(entry)
    return handled

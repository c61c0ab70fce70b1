"""One stage in its own process: ``python -m movierec.orchestration.stage_process STAGE PROJECT``.

The DAG's tasks run each stage this way rather than in the task's own process, for the same
reason ``dvc repro`` does: TensorFlow numbers the functions it traces with a process-wide
counter, so a model saved after other stages ran in the same process is the same model in
different bytes. A fresh process per stage makes the DAG's outputs byte-identical to
``dvc repro``'s and to a rerun's, whatever the Airflow executor (``airflow dags test`` runs
every task in one process).

Exit status: 0 on success, 2 on a user-facing error (its message on stderr), else 1.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from movierec.errors import MovierecError
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.settings import load_settings
from movierec.stages import STAGES


def main(argv: list[str] | None = None) -> int:
    """Run ``argv = [stage, project]``; see the module's docstring."""
    stage, project = (argv if argv is not None else sys.argv[1:])[:2]
    project_dir = Path(project).resolve()
    try:
        settings = load_settings(project_dir / "params.yaml")
        paths = ProjectPaths.under(project_dir)
        module = importlib.import_module(f"movierec.stages.{stage}")
        start = time.perf_counter()
        module.run(settings, paths)
        if stage in STAGES:
            Recorder(paths.reports, paths.plots).timing(stage, time.perf_counter() - start)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

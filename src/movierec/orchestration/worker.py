"""One worker of a training cluster: ``python -m movierec.orchestration.worker SPEC.json``.

The launcher (:mod:`movierec.stages.distributed`) writes the stage's name, its checked
settings and its layout into ``SPEC.json`` and starts this module once per worker with that
worker's ``TF_CONFIG``; every worker thus runs the stage function with exactly the settings
the launcher was given (a profile, ``--params``, ``--root`` included).

Exit status: 0 on success, 2 on a user-facing error (its message on stderr), 143 when stopped
by SIGTERM (after the stage's atomic writes have removed their temporary files), else 1.
"""

from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path
from typing import Any

from movierec.errors import MovierecError
from movierec.io import read_json, write_json
from movierec.paths import ProjectPaths
from movierec.settings import Settings, validate_params


def write_spec(path: Path, stage: str, settings: Settings, paths: ProjectPaths) -> Path:
    """Write what every worker runs: the stage, the settings and the layout (absolute paths)."""
    layout = {name: str(Path(getattr(paths, name)).resolve()) for name in ProjectPaths.__dataclass_fields__}
    write_json(path, {"stage": stage, "settings": settings.as_params(), "paths": layout})
    return path


def read_spec(path: Path) -> tuple[str, Settings, ProjectPaths]:
    """The stage, settings and layout written by :func:`write_spec`.

    Raises:
        ParamsError: the settings do not pass the checks of ``params.yaml``.
    """
    spec: dict[str, Any] = read_json(path)
    settings = validate_params(spec["settings"], f"{path} (the launcher's settings)")
    paths = ProjectPaths(**{name: Path(value) for name, value in spec["paths"].items()})
    return str(spec["stage"]), settings, paths


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the stage, so its atomic writes clean up


def main(argv: list[str] | None = None) -> int:
    """Run the stage of the spec file ``argv[0]``; see the module's docstring."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m movierec.orchestration.worker SPEC.json", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        stage, settings, paths = read_spec(Path(args[0]))
        importlib.import_module(f"movierec.stages.{stage}").run(settings, paths)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

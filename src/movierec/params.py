"""Reading ``params.yaml``: the pipeline's hyperparameters, grouped by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from movierec.errors import ParamsError
from movierec.paths import PARAMS_FILE


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Load ``params.yaml`` into a dict.

    Args:
        path: the YAML file; defaults to ``params.yaml`` in the working directory.

    Returns:
        The parsed mapping.

    Raises:
        ParamsError: the file is missing or is not a YAML mapping.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of stage names to settings")
    return data


def get(params: dict[str, Any], dotted: str) -> Any:
    """Return ``params['a']['b']`` for ``dotted='a.b'``, with an error naming the missing key."""
    node: Any = params
    walked = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml has no '{'.'.join(walked)}' (needed: '{dotted}')")
        node = node[part]
    return node


def require_fraction(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check that ``value`` is a number in (0, 1) (or [0, 1) with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamsError(f"{name} must be a number between 0 and 1, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        raise ParamsError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def require_positive_int(value: Any, name: str) -> int:
    """Check that ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{name} must be a positive integer, got {value!r}")
    return value

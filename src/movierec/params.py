"""Reading ``params.yaml``: the pipeline's hyperparameters, grouped by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from movierec.errors import ParamsError
from movierec.paths import PARAMS_FILE

REPLACED_WHOLE = frozenset({"ablation", "space"})


def load_params(path: str | Path = PARAMS_FILE, profile: str | None = None) -> dict[str, Any]:
    """Load ``params.yaml`` into a dict, with a profile's overrides laid over it.

    Args:
        path: the YAML file; defaults to ``params.yaml`` in the working directory.
        profile: the name of a file ``profiles/<name>.yaml`` beside ``path`` whose mappings
            are merged key by key over the parameters (e.g. ``quick``: a small budget and one
            seed, for development and the tests).

    Returns:
        The parsed mapping.

    Raises:
        ParamsError: a file is missing or is not a YAML mapping, or the profile names a
            section or key that params.yaml does not have.
    """
    params = _read_mapping(Path(path))
    if profile:
        profile_path = Path(path).parent / "profiles" / f"{profile}.yaml"
        if not profile_path.exists():
            known = sorted(p.stem for p in profile_path.parent.glob("*.yaml"))
            raise ParamsError(f"no profile '{profile}' ({profile_path} not found; known: {', '.join(known) or 'none'})")
        params = overlay(params, _read_mapping(profile_path), str(profile_path))
    return params


def overlay(base: dict[str, Any], override: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """``base`` with ``override`` merged key by key (mappings recursively, other values replaced).

    Mappings named in :data:`REPLACED_WHOLE` (ablation rows, search spaces) are collections
    rather than settings: an override replaces them whole, so a profile can list fewer rows.

    Raises:
        ParamsError: ``override`` names a key ``base`` lacks (a typo would silently do nothing).
    """
    out = dict(base)
    for key, value in override.items():
        name = f"{prefix}{key}"
        if key not in base:
            raise ParamsError(f"{source}: '{name}' is not a setting of params.yaml")
        if isinstance(value, dict) and isinstance(base[key], dict) and value and key not in REPLACED_WHOLE:
            out[key] = overlay(base[key], value, source, f"{name}.")
        else:
            out[key] = value
    return out


def _read_mapping(path: Path) -> dict[str, Any]:
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

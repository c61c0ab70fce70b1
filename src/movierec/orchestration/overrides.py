"""The DAG's trigger form, written into ``params.yaml`` (comments kept) like ``dvc exp run -S``.

Writing the values into the file, rather than passing them around it, keeps one record of
what a run used: DVC sees the changed params (``dvc.lock`` and ``dvc status`` agree with the
outputs), and the MLflow run logs them. An empty field keeps the file's value.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from movierec.io import atomic_file
from movierec.settings import validate_params

# form field -> params.yaml key
FORM: dict[str, str] = {
    "data_source": "data.source",
    "retrieval_epochs": "retrieval.epochs",
    "ranking_epochs": "ranking.epochs",
    "promotion_tolerance": "registry.tolerance",
    "promote": "registry.promote",
}
# a given number of epochs also pins the tune stage's searched range for that model to it
SEARCHED = {
    "retrieval.epochs": ("tune", "retrieval", "space", "epochs"),
    "ranking.epochs": ("tune", "ranking", "space", "epochs"),
}


def changes(form: dict[str, Any]) -> dict[str, Any]:
    """The form's non-empty fields as ``{params.yaml key: value}``."""
    return {FORM[name]: value for name, value in form.items() if name in FORM and value not in (None, "")}


def apply(params_file: Path, form: dict[str, Any]) -> dict[str, Any]:
    """Write the form's values into ``params_file``; returns the keys that changed.

    The result is checked like any ``params.yaml`` before the file is replaced (atomically).

    Raises:
        ParamsError: a value is of the wrong type or out of range (the file is left as it was).
    """
    from ruamel.yaml import YAML

    wanted = changes(form)
    if not wanted:
        return {}
    round_trip = YAML()
    round_trip.preserve_quotes = True
    document = round_trip.load(Path(params_file).read_text(encoding="utf-8"))
    changed: dict[str, Any] = {}
    for dotted, value in wanted.items():
        *parents, last = dotted.split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        if node.get(last) != value:
            node[last] = value
            changed[dotted] = value
        if dotted in SEARCHED:
            *space_path, key = SEARCHED[dotted]
            space: Any = document
            for part in space_path:
                space = space.get(part) if isinstance(space, dict) else None
            if isinstance(space, dict) and key in space and space[key] != {"choices": [value]}:
                space[key] = {"choices": [value]}
                changed[".".join(SEARCHED[dotted])] = {"choices": [value]}
    if not changed:
        return {}
    text = io.StringIO()
    round_trip.dump(document, text)
    validate_params(yaml.safe_load(text.getvalue()), f"{params_file} with the trigger form's values")
    with atomic_file(params_file, "w", encoding="utf-8") as handle:
        handle.write(text.getvalue())
    return changed

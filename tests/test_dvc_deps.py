"""``dvc.yaml``: every stage's code deps cover the package modules its stage module imports.

The stage modules (``src/movierec/stages/<stage>.py``) are walked for imports, statically
and transitively inside the package (imports inside functions included); every module
reached must lie under one of the stage's ``deps`` in ``dvc.yaml``, or a code change would
leave ``dvc repro`` serving stale outputs. Package ``__init__.py`` files hold no pipeline
logic and are not required.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from movierec.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else None


def _imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "movierec"}


def imported_files(module: str) -> set[str]:
    """Repository-relative files of every package module ``module`` reaches (``__init__`` left out)."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        todo += sorted(_imports(path, name))
    return {str(p.relative_to(ROOT)) for p in seen.values() if p.name != "__init__.py"}


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_the_walker_follows_function_level_and_relative_imports() -> None:
    files = imported_files("movierec.stages.train_ranking")
    assert "src/movierec/stages/inputs.py" in files  # a top-level import
    assert "src/movierec/models/export.py" in files  # imported inside train_ranking()
    assert "src/movierec/baselines/biases.py" in files  # likewise, one level further


@pytest.mark.parametrize("stage", STAGES)
def test_a_stages_deps_cover_the_code_it_imports(stage: str) -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert stage in stages, f"dvc.yaml has no stage {stage!r}"
    deps = [str(d) for d in stages[stage].get("deps", [])]
    missing = sorted(f for f in imported_files(f"movierec.stages.{stage}") if not _covered(f, deps))
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps on: {', '.join(missing)}"


def test_every_dvc_stage_has_a_stage_module() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert sorted(stages) == sorted(STAGES)

"""The bundle's layout is spelled in one module: no other source file names its files."""

from __future__ import annotations

import ast
from pathlib import Path

from movierec.models import layout

SRC = Path(__file__).resolve().parents[2] / "src" / "movierec"
# the file names that exist only inside a bundle (folder names such as "retrieval" or
# "scann" double as stage and index names, so they are checked through these)
NAMES = {
    layout.MANIFEST,
    layout.QUERY_WEIGHTS,
    layout.RETRIEVAL_META,
    layout.CATALOGUE,
    layout.TOPK_META,
    layout.FAISS_INDEX,
    layout.FAISS_IDS,
    layout.FAISS_META,
    layout.RANKER,
    layout.RANKER_META,
    layout.RANKER_WEIGHTS,
    layout.EASE_WEIGHTS,
    layout.EASE_META,
    layout.RATING_BIASES,
    layout.CONTEXT_ARRAYS,
    layout.CONTEXT_META,
}


def test_no_module_but_layout_spells_a_bundle_file_name() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == Path(layout.__file__):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docstrings and node.value in NAMES:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert not offenders, "bundle file names spelled outside models/layout.py: " + ", ".join(offenders)


def test_every_required_part_lies_in_the_two_model_folders() -> None:
    for part in layout.REQUIRED:
        assert part.split("/")[0] in (layout.RETRIEVAL, layout.RANKING), part
    paths = layout.BundleLayout(Path("b"))
    assert paths.scann == Path("b") / layout.RETRIEVAL / layout.SCANN
    assert paths.manifest == Path("b") / layout.MANIFEST

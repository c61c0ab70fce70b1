"""The manifest refuses incomplete bundles and notices a changed part."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.errors import DataError
from movierec.models.bundle import REQUIRED, check_manifest, write_manifest


def _fake_bundle(root: Path) -> tuple[Path, Path]:
    checkpoints, prepared = root / "checkpoints", root / "prepared"
    for part in REQUIRED:
        path = checkpoints / part
        if part.endswith(".json"):
            path.parent.mkdir(parents=True, exist_ok=True)
            content = {
                "vocab": {"item_id": [1]},
                "query_inputs": {},
                "candidate_inputs": {},
                "embedding_dim": 4,
                "inputs": {},
            }
            path.write_text(json.dumps(content))
        elif part.endswith(".parquet"):
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"item_id": [1]}), path)
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "saved_model.pb").write_bytes(part.encode())
    prepared.mkdir()
    for name in ("interactions.parquet", "items.parquet"):
        pq.write_table(pa.table({"x": [1]}), prepared / name)
    return checkpoints, prepared


def test_manifest_versions_by_content_and_checks_parts(tmp_path: Path) -> None:
    checkpoints, prepared = _fake_bundle(tmp_path)
    first = write_manifest(checkpoints, prepared, {"seed": 1}, tmp_path)
    again = write_manifest(checkpoints, prepared, {"seed": 1}, tmp_path)
    assert first["version"] == again["version"]
    assert write_manifest(checkpoints, prepared, {"seed": 2}, tmp_path)["version"] != first["version"]
    assert check_manifest(checkpoints)["version"]
    (checkpoints / "ranking" / "pointwise" / "saved_model.pb").write_bytes(b"tampered")
    with pytest.raises(DataError, match="ranking/pointwise does not match"):
        check_manifest(checkpoints)


def test_incomplete_bundle_names_the_missing_parts(tmp_path: Path) -> None:
    checkpoints, prepared = _fake_bundle(tmp_path)
    import shutil

    shutil.rmtree(checkpoints / "retrieval" / "scann")
    with pytest.raises(DataError, match="retrieval/scann"):
        write_manifest(checkpoints, prepared, {}, tmp_path)
    assert not (checkpoints / "manifest.json").exists()
    (checkpoints / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        check_manifest(checkpoints)

"""``movierec bundle``: the manifest that makes ``checkpoints/`` one versioned, checkable bundle."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movierec.errors import DataError
from movierec.io import read_json, write_json
from movierec.models.layout import BRUTE, CANDIDATE_TOWER, MANIFEST, QUERY_TOWER, REQUIRED, SCANN, BundleLayout

FORMAT_VERSION = 1
__all__ = ["MANIFEST", "REQUIRED", "check_manifest", "tree_hash", "write_manifest"]


def tree_hash(path: Path) -> str:
    """SHA-256 over a file, or over a folder's relative paths and file contents."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_manifest(checkpoints: Path, prepared_dir: Path, params: dict[str, Any], reports_dir: Path) -> dict[str, Any]:
    """Check that every bundle part exists, then write ``checkpoints/manifest.json``.

    The version is a digest of the data fingerprint, the parameters and every part's
    content, so the same inputs always give the same version.

    Raises:
        DataError: a part of the bundle is missing.
    """
    checkpoints = Path(checkpoints)
    missing = [f"{p} ({what})" for p, what in REQUIRED.items() if not (checkpoints / p).exists()]
    if missing:
        raise DataError("incomplete bundle, missing: " + "; ".join(missing), path=checkpoints)
    parts = {p: tree_hash(checkpoints / p) for p in REQUIRED}
    data = {name: tree_hash(Path(prepared_dir) / name) for name in ("interactions.parquet", "items.parquet")}
    data_fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    layout = BundleLayout(checkpoints)
    retrieval = read_json(layout.retrieval_meta)
    ranker = read_json(layout.ranker_meta)
    metrics_path = Path(reports_dir) / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    index_path = layout.index_report
    digest = hashlib.sha256(
        json.dumps({"data": data_fingerprint, "params": params, "parts": parts}, sort_keys=True, default=str).encode()
    ).hexdigest()
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": digest[:16],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_fingerprint": data_fingerprint,
        "data_files": data,
        "params": params,
        "parts": parts,
        "metrics": {
            "test": {s: m.get("all", {}) for s, m in metrics.get("systems", {}).items()},
            "ratings": metrics.get("ratings", {}),
            "bars": metrics.get("bars", {}),
            "index": read_json(index_path) if index_path.exists() else {},
        },
        "vocabularies": retrieval["vocab"],
        "inputs": {
            QUERY_TOWER: retrieval["query_inputs"],
            CANDIDATE_TOWER: retrieval["candidate_inputs"],
            "ranker": ranker["inputs"],
        },
        "outputs": {
            QUERY_TOWER: ["embedding"],
            CANDIDATE_TOWER: ["embedding"],
            BRUTE: ["scores", "item_ids"],
            SCANN: ["scores", "item_ids"],
            "ranker": ["score", "rating"],
        },
        "embedding_dim": retrieval["embedding_dim"],
    }
    write_json(checkpoints / MANIFEST, manifest)
    return manifest


def check_manifest(checkpoints: Path) -> dict[str, Any]:
    """Read the manifest and verify every part's digest; raise DataError naming what differs."""
    checkpoints = Path(checkpoints)
    path = checkpoints / MANIFEST
    if not path.exists():
        raise DataError("no manifest: not a movierec bundle (run `dvc repro` or `movierec bundle`)", path=path)
    try:
        manifest = read_json(path)
    except json.JSONDecodeError as exc:
        raise DataError(f"manifest is not valid JSON: {exc}", path=path) from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"manifest format {manifest.get('format_version')} is not {FORMAT_VERSION}", path=path)
    for part, expected in manifest["parts"].items():
        if not (checkpoints / part).exists():
            raise DataError(f"bundle part {part} is missing", path=checkpoints)
        if tree_hash(checkpoints / part) != expected:
            raise DataError(f"bundle part {part} does not match the manifest (corrupt or replaced)", path=checkpoints)
    return manifest

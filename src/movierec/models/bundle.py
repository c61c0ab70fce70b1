"""``movierec bundle``: the manifest that makes ``checkpoints/`` one versioned, checkable bundle."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movierec.errors import DataError
from movierec.io import read_json, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
REQUIRED = {
    "retrieval/query_tower": "query tower SavedModel",
    "retrieval/candidate_tower": "candidate tower SavedModel",
    "retrieval/brute": "brute-force top-k SavedModel",
    "retrieval/scann": "ScaNN top-k SavedModel",
    "retrieval/faiss": "FAISS index",
    "retrieval/retrieval.json": "retrieval metadata",
    "retrieval/catalogue.parquet": "catalogue the towers were fitted on",
    "ranking/pointwise": "ranker SavedModel",
    "ranking/ranker.json": "ranker metadata",
    "ranking/ease.npz": "EASE weights of the ranking features",
    "ranking/ease.json": "EASE feature settings",
    "ranking/rating_biases.npz": "the served rating predictor (mean plus user and item biases)",
    "ranking/context.npz": "the ranking context: histories, user activity, item co-occurrence",
    "ranking/context.json": "the ranking context's cut and mean rating",
}


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
    retrieval = read_json(checkpoints / "retrieval" / "retrieval.json")
    ranker = read_json(checkpoints / "ranking" / "ranker.json")
    metrics_path = Path(reports_dir) / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    index_path = checkpoints / "retrieval" / "index.json"
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
            "query_tower": retrieval["query_inputs"],
            "candidate_tower": retrieval["candidate_inputs"],
            "ranker": ranker["inputs"],
        },
        "outputs": {
            "query_tower": ["embedding"],
            "candidate_tower": ["embedding"],
            "brute": ["scores", "item_ids"],
            "scann": ["scores", "item_ids"],
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

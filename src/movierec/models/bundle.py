"""``movierec bundle``: the manifest that makes ``checkpoints/`` one versioned, checkable bundle.

The manifest proves the bundle: :func:`check_manifest` accepts it only when it lists a digest
for exactly the parts of :data:`~movierec.models.layout.REQUIRED`, every part lies inside the
bundle folder, the version label is the digest of the bundle's content (recomputed, not read)
and every part's files hash to the listed digest.
"""

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
__all__ = ["MANIFEST", "REQUIRED", "check_manifest", "content_version", "tree_hash", "write_manifest"]
_FIELDS = ("version", "data_fingerprint", "params", "parts")


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


def content_version(data_fingerprint: str, params: Any, parts: dict[str, str]) -> str:
    """The bundle's version: a digest of its data fingerprint, parameters and parts' digests.

    :func:`write_manifest` labels a bundle with it and :func:`check_manifest` recomputes it,
    so a label that was edited, or copied from another bundle, is refused.
    """
    content = {"data": data_fingerprint, "params": params, "parts": parts}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(data_files: Any) -> str:
    """The data fingerprint: a digest of the prepared data files' digests."""
    return hashlib.sha256(json.dumps(data_files, sort_keys=True).encode()).hexdigest()


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
    data_fingerprint = _fingerprint(data)
    # as the manifest will hold them, so check_manifest recomputes the same version from the file
    params = json.loads(json.dumps(params, default=str))
    layout = BundleLayout(checkpoints)
    retrieval = read_json(layout.retrieval_meta)
    ranker = read_json(layout.ranker_meta)
    metrics_path = Path(reports_dir) / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    index_path = layout.index_report
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": content_version(data_fingerprint, params, parts),
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
    """Read the manifest and check that it proves the bundle; return it.

    In this order, so that nothing outside the bundle is ever looked at: the manifest's
    shape; every part is a relative path inside the bundle folder (no ``..``, no absolute
    path, no symbolic link out of it); the parts are exactly those of ``REQUIRED`` (a
    missing one or an unknown one is refused: this module writes exactly those); the version
    label is the digest of the content; only then each part exists and matches its digest.

    Raises:
        DataError: naming what is wrong (the manifest's field, the part, the version).
    """
    checkpoints = Path(checkpoints)
    path = checkpoints / MANIFEST
    if not path.exists():
        raise DataError("no manifest: not a movierec bundle (run `dvc repro` or `movierec bundle`)", path=path)
    try:
        manifest = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"manifest is not valid JSON: {exc}", path=path) from exc
    if not isinstance(manifest, dict):
        raise DataError(f"manifest is a JSON {type(manifest).__name__}, not an object", path=path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"manifest format {manifest.get('format_version')} is not {FORMAT_VERSION}", path=path)
    lacking = [name for name in _FIELDS if name not in manifest]
    if lacking:
        raise DataError(f"manifest lacks {', '.join(lacking)}: rebuild it with `movierec bundle`", path=path)
    parts = _checked_parts(manifest["parts"], checkpoints, path)
    _check_version(manifest, path)
    for part, expected in parts.items():
        if not (checkpoints / part).exists():
            raise DataError(f"bundle part {part} is missing", path=checkpoints)
        if tree_hash(checkpoints / part) != expected:
            raise DataError(f"bundle part {part} does not match the manifest (corrupt or replaced)", path=checkpoints)
    return manifest


def _checked_parts(parts: Any, checkpoints: Path, path: Path) -> dict[str, str]:
    """The manifest's ``parts``: every one inside the bundle, exactly the required ones.

    Containment is decided from the path alone (and the bundle's own links), before any
    existence test, with one message whether or not an outside path exists.
    """
    if not isinstance(parts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parts.items()):
        raise DataError("manifest parts must be an object of part path -> digest (strings)", path=path)
    root = checkpoints.resolve()
    for part in parts:
        if not _inside(root, part):
            raise DataError(
                f"bundle part {part!r} is not a relative path inside the bundle folder: refused unread", path=path
            )
    missing = [f"{p} ({what})" for p, what in REQUIRED.items() if p not in parts]
    if missing:
        raise DataError(
            "manifest lists no digest for " + "; ".join(missing) + ": every part must be checked", path=path
        )
    unknown = sorted(set(parts) - set(REQUIRED))
    if unknown:
        raise DataError(
            f"manifest lists unknown parts {', '.join(unknown)}: a bundle holds exactly the parts of "
            "movierec.models.layout.REQUIRED (rebuild it with `movierec bundle`)",
            path=path,
        )
    return parts


def _inside(root: Path, part: str) -> bool:
    """Whether ``part`` is a relative path that stays inside ``root``, links followed."""
    relative = Path(part)
    if not part or "\x00" in part or relative.is_absolute() or relative.drive or ".." in relative.parts:
        return False
    try:
        return (root / relative).resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop, a name too long: not a usable part either way
        return False


def _check_version(manifest: dict[str, Any], path: Path) -> None:
    """Refuse a version label (or data fingerprint) that is not computed from the manifest's content."""
    data_files = manifest.get("data_files")
    if data_files is not None and _fingerprint(data_files) != manifest["data_fingerprint"]:
        raise DataError("the data fingerprint does not match the data files listed in the manifest", path=path)
    computed = content_version(manifest["data_fingerprint"], manifest["params"], manifest["parts"])
    if manifest["version"] != computed:
        raise DataError(
            f"the version label {manifest['version']!r} does not match the bundle's content (its digest is "
            f"{computed}): the manifest was edited; rebuild it with `movierec bundle`",
            path=path,
        )

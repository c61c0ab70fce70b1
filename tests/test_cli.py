"""The CLI: one clear line and exit status 2 on bad input; the steps chain through it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from movierec.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_bad_rating_names_file_and_line_and_leaves_no_output(project: Path, capsys: pytest.CaptureFixture) -> None:
    bad = project / "mine"
    bad.mkdir()
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,7.5,200\n")
    (bad / "movies.csv").write_text('movieId,title,genres\n1,"A, The (1990)",Drama\n2,B (1991),Comedy\n')
    assert main(["data", "fetch", "--source", str(bad)]) == 0
    assert main(["data", "prepare", "--source", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "ratings.csv, line 3" in err and "7.5" in err
    assert not (project / "data" / "prepared").exists()


def test_steps_out_of_order_say_what_to_run(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["split"]) == 2
    assert "run `movierec data prepare` first" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "no metrics yet" in capsys.readouterr().err


def test_unknown_source_and_missing_params(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "fetch", "--source", "ml-7k"]) == 2
    assert "ml-7k" in capsys.readouterr().err
    assert main(["--params", "nope.yaml", "split"]) == 2
    assert "nope.yaml not found" in capsys.readouterr().err


def test_cli_chain_on_a_local_dataset(project: Path, csv_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    for argv in (
        ["data", "fetch", "--source", str(csv_dataset)],
        ["data", "prepare", "--source", str(csv_dataset)],
        ["split"],
        ["features"],
    ):
        assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "prepared" in out and "split (user_temporal)" in out and "features for test" in out
    assert (project / "reports" / "split.json").exists()


def test_the_service_commands_start_without_a_params_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A service host (a container) has no params.yaml: serve and its benchmark read MOVIEREC_* only."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "serve", "--url", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "no server answers" in err and "params" not in err
    monkeypatch.setenv("MOVIEREC_BUNDLE_DIR", str(tmp_path / "nothing"))
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "manifest" in err and "params" not in err
    assert main(["split"]) == 2  # the pipeline's commands still need it
    assert "params.yaml not found" in capsys.readouterr().err

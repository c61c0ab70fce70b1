"""The launcher stage's own checks and its clean-up of what a killed worker's atomic writes left."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from movierec.errors import ParamsError
from movierec.paths import ProjectPaths
from movierec.settings import Settings
from movierec.stages import distributed
from movierec.stages.distributed import remove_leftovers


def test_only_the_training_stages_run_on_several_workers(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="train_retrieval and train_ranking"):
        distributed.run(Settings(), ProjectPaths.under(tmp_path), "baselines")
    with pytest.raises(ParamsError, match="--index 2 is not a worker of the 2 hosts"):
        distributed.run(Settings(), ProjectPaths.under(tmp_path), "train_retrieval", hosts=["a:1", "b:1"], index=2)


def _aged(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_leftovers_of_this_run_are_removed_and_older_or_other_files_kept(tmp_path: Path) -> None:
    recs = tmp_path / "data" / "recs"
    (recs / "retrieval").mkdir(parents=True)
    (recs / "retrieval" / "lists.parquet").write_text("an output")
    since = time.time()
    fresh_dir = recs / ".retrieval.tmp-abc123"
    fresh_dir.mkdir()
    (fresh_dir / "half.parquet").write_text("half written")
    fresh_file = recs / "retrieval" / ".lists.parquet.tmp-x1"
    fresh_file.write_text("half written")
    staging = tmp_path / "data" / ".recs-staging-q"
    staging.mkdir()
    old_run = recs / ".ranking.tmp-old"
    old_run.write_text("another run's")
    _aged(old_run, 3600)
    hidden = recs / ".keep"
    hidden.write_text("not a temporary")

    removed = remove_leftovers([recs / "retrieval", tmp_path / "data" / "recs"], since)

    assert set(removed) == {fresh_dir, fresh_file, staging}
    assert not fresh_dir.exists() and not fresh_file.exists() and not staging.exists()
    assert old_run.exists() and hidden.exists()
    assert (recs / "retrieval" / "lists.parquet").read_text() == "an output"


def test_an_output_moved_aside_comes_back_if_its_replacement_never_arrived(tmp_path: Path) -> None:
    models = tmp_path / "data" / "models"
    aside = tmp_path / "data" / f".models.old-{os.getpid()}"
    aside.mkdir(parents=True)
    (aside / "seed1").write_text("the previous models")
    _aged(aside, 3600)  # a renamed folder keeps its old time

    assert remove_leftovers([models], time.time()) == [aside]
    assert (models / "seed1").read_text() == "the previous models"

    # with the replacement in place, the old copy is only litter
    again = tmp_path / "data" / ".models.old-1"
    again.mkdir()
    assert remove_leftovers([models], time.time()) == [again]
    assert not again.exists() and (models / "seed1").exists()

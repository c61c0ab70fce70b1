"""The lineage a run records: the git commit, the DVC lock digest, flattened settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from movierec.tracking.run_log import dataset_label, dvc_lock_digest, flatten, git_commit


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_git_commit_is_dirty_only_when_code_or_settings_changed(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"  # not a repository
    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "dvc.lock").write_text("stages: {}\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text("{}")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "dvc.lock").write_text("stages: {x: 1}\n")  # the pipeline's own outputs
    (tmp_path / "reports" / "metrics.json").write_text('{"x": 1}')
    (tmp_path / "untracked.txt").write_text("x")
    assert git_commit(tmp_path) == head
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_the_lock_digest_leaves_out_the_register_stage(tmp_path: Path) -> None:
    assert dvc_lock_digest(tmp_path) == "none"
    lock = {"schema": "2.0", "stages": {"bundle": {"outs": [{"md5": "a"}]}, "register": {"outs": [{"md5": "b"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    digest = dvc_lock_digest(tmp_path)
    lock["stages"]["register"]["outs"][0]["md5"] = "c"
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert dvc_lock_digest(tmp_path) == digest
    lock["stages"]["bundle"]["outs"][0]["md5"] = "d"
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert dvc_lock_digest(tmp_path) != digest


def test_flatten_and_labels() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": None, "e": {}}}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "a.d": "None",
        "a.e": "{}",
    }
    assert dataset_label("grouplens/ml-1m") == "ml-1m" and dataset_label("/data/my-set/") == "my-set"
    assert dataset_label("ml-100k") == "ml-100k"

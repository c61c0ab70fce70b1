"""The DAG's trigger form written into params.yaml: comments kept, values checked, no-ops left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from movierec.errors import ParamsError
from movierec.orchestration.overrides import apply, changes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    return path


def test_empty_fields_change_nothing_and_leave_the_file_alone(params_file: Path) -> None:
    before = params_file.read_text()
    stamp = params_file.stat().st_mtime_ns
    assert changes({"data_source": None, "retrieval_epochs": "", "dvc_push": True}) == {}
    assert apply(params_file, {"data_source": None, "ranking_epochs": None}) == {}
    assert params_file.read_text() == before and params_file.stat().st_mtime_ns == stamp


def test_filled_fields_are_written_with_the_comments_kept(params_file: Path) -> None:
    changed = apply(
        params_file,
        {"data_source": "grouplens/ml-1m", "retrieval_epochs": 4, "promotion_tolerance": 0.01, "promote": False},
    )
    assert changed == {
        "data.source": "grouplens/ml-1m",
        "retrieval.epochs": 4,
        "tune.retrieval.space.epochs": {"choices": [4]},
        "registry.tolerance": 0.01,
        "registry.promote": False,
    }
    text = params_file.read_text()
    assert "# Hyperparameters, grouped by the pipeline stage that reads them" in text  # comments survive
    assert "# the most epochs; the best one on validation is kept" in text
    params = yaml.safe_load(text)
    assert params["data"]["source"] == "grouplens/ml-1m" and params["retrieval"]["epochs"] == 4
    assert params["tune"]["retrieval"]["space"]["epochs"] == {"choices": [4]}  # the search keeps to it
    assert params["tune"]["retrieval"]["space"]["embedding_dim"] == {"choices": [32, 64, 128]}  # the rest stays
    assert params["registry"] == {**params["registry"], "tolerance": 0.01, "promote": False}
    assert apply(params_file, {"retrieval_epochs": 4}) == {}  # the same values again: nothing to do


@pytest.mark.parametrize(
    ("form", "key"),
    [({"ranking_epochs": -1}, "ranking.epochs"), ({"promotion_tolerance": 2.0}, "registry.tolerance")],
)
def test_a_bad_value_names_the_key_and_leaves_the_file(params_file: Path, form: dict, key: str) -> None:
    before = params_file.read_text()
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        apply(params_file, form)
    assert params_file.read_text() == before

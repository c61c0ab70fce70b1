"""Typed settings: params.yaml is checked key by key, and the models hold the defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from movierec.errors import ParamsError
from movierec.params import load_params
from movierec.settings import RetrievalSettings, Settings, load_settings, validate_params

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_params_yaml_states_the_defaults() -> None:
    """One home of defaults: the models' values are params.yaml's, key for key."""
    assert load_settings(ROOT / "params.yaml") == Settings()


def test_every_key_of_params_yaml_survives_the_check_unchanged() -> None:
    raw = load_params(ROOT / "params.yaml")
    checked = load_settings(ROOT / "params.yaml").as_params()

    def walk(a: object, b: object, where: str) -> None:
        if isinstance(a, dict):
            for key, value in a.items():
                assert key in b, f"{where}{key} lost"
                walk(value, b[key], f"{where}{key}.")
        else:
            assert a == b and type(a) is type(b), f"{where}: {a!r} became {b!r}"

    walk(raw, checked, "")


def test_a_missing_section_or_key_takes_the_default(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"retrieval": {"epochs": 2}}))
    settings = load_settings(tmp_path / "params.yaml")
    assert settings.retrieval.epochs == 2
    assert settings.retrieval.embedding_dim == RetrievalSettings().embedding_dim
    assert settings.train == Settings().train


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("retrieval", "embedding_dim", -3, "retrieval.embedding_dim: input should be greater than 0"),
        ("retrieval", "embedding_dim", "64", "retrieval.embedding_dim: input should be a valid integer"),
        ("retrieval", "embeding_dim", 64, "retrieval.embeding_dim is not a setting"),
        ("split", "user_temporal", {"valid_frac": 1.5}, "split.user_temporal.valid_frac: input should be less than 1"),
        ("split", "method", "random", "split.method: input should be 'user_temporal', 'temporal' or 'leave_last_n'"),
        ("train", "seeds", [1, 1], "train.seeds: the seeds must be distinct"),
        ("train", "final_fit_all", "yes", "train.final_fit_all: input should be a valid boolean"),
        ("evaluate", "min_rating", "4", "evaluate.min_rating"),
        ("index", "target_recall", 1.5, "index.target_recall: input should be less than or equal to 1"),
        ("retrieval", "ablation", {"x": {"query": {"sequence": "lstm"}}}, "ablation row 'x': query.sequence"),
        ("retrieval", "ablation", {"x": {"epochz": 3}}, "ablation row 'x': epochz is not a setting"),
        ("tune", "seed", -1, "tune.seed: input should be greater than or equal to 0"),
    ],
)
def test_a_bad_value_stops_with_the_key_named(section: str, key: str, value: object, message: str) -> None:
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params[section][key] = value
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_params(params)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"epochs": {"low": 5, "high": 2}}, "tune.retrieval.space.epochs: needs numbers low < high"),
        ({"learning_rate": {"low": 0, "high": 1.0, "log": True}}, "a log scale needs low > 0"),
        ({"epochs": {"choices": []}}, "tune.retrieval.space.epochs.choices"),
        ({"not_a_setting": {"choices": [1, 2]}}, "not_a_setting are not settings of the retrieval section"),
    ],
)
def test_a_bad_search_space_names_the_entry(space: dict, message: str) -> None:
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["tune"]["retrieval"]["space"] = space
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def test_the_quick_profile_is_checked_too() -> None:
    quick = load_settings(ROOT / "params.yaml", "quick")
    assert quick.train.seeds == [42] and quick.tune.retrieval.trials == 2
    assert quick.retrieval.embedding_dim == Settings().retrieval.embedding_dim


def test_search_spaces_dump_in_the_form_they_are_written() -> None:
    space = Settings().as_params()["tune"]["retrieval"]["space"]
    assert space["embedding_dim"] == {"choices": [32, 64, 128]}
    assert space["epochs"] == {"low": 3, "high": 8, "log": False}

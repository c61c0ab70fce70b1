"""The tune stage's search space is read strictly, and its ranking trials never score their own labels."""

from __future__ import annotations

import numpy as np
import optuna
import pyarrow as pa
import pytest

from movierec.errors import ParamsError
from movierec.models.tuning import blend_grid, split_users, suggest

SPACE = {
    "dim": {"choices": [32, [64, 32]]},
    "lr": {"low": 0.001, "high": 0.1, "log": True},
    "epochs": {"low": 2, "high": 5},
}


def test_suggest_draws_within_the_space_and_keeps_list_choices() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        drawn = suggest(trial, SPACE, "retrieval")
        study.tell(trial, 0.0)
        assert drawn["dim"] in (32, [64, 32])
        assert 0.001 <= drawn["lr"] <= 0.1 and isinstance(drawn["lr"], float)
        assert 2 <= drawn["epochs"] <= 5 and isinstance(drawn["epochs"], int)
        seen.append(str(drawn["dim"]))
    assert len(set(seen)) == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"x": 3}, "tune.retrieval.space.x must be a mapping"),
        ({"x": {"choices": []}}, "non-empty list"),
        ({"x": {"low": 5, "high": 1}}, "low < high"),
        ({"x": {"low": 0, "high": 1.0, "log": True}}, "log scale needs low > 0"),
    ],
)
def test_bad_space_entries_name_the_key(spec: dict, message: str) -> None:
    trial = optuna.create_study().ask()
    with pytest.raises(ParamsError, match=message):
        suggest(trial, spec, "retrieval")


def test_split_users_gives_two_disjoint_halves_of_the_validation_users() -> None:
    users = np.repeat(np.arange(1, 41), 3)
    valid = pa.table({"user_id": pa.array(users, pa.int64()), "item_id": pa.array(np.arange(users.size), pa.int64())})
    a, b = split_users(valid, seed=3)
    ua, ub = set(a.column("user_id").to_pylist()), set(b.column("user_id").to_pylist())
    assert not ua & ub and ua | ub == set(range(1, 41)) and len(ua) == 20
    assert a.num_rows + b.num_rows == valid.num_rows
    again, _ = split_users(valid, seed=3)
    assert again.equals(a)


def test_blend_grid_is_every_pair_and_bad_grids_name_the_key() -> None:
    assert blend_grid({"weight": [0, 1], "tau": [3, 10.5]}) == [(0.0, 3.0), (0.0, 10.5), (1.0, 3.0), (1.0, 10.5)]
    for bad, message in (
        ([0, 1], "mapping with the lists"),
        ({"weight": [1]}, "mapping with the lists"),
        ({"weight": [], "tau": [3]}, "tune.retrieval.blend.weight must be a non-empty list"),
        ({"weight": [1], "tau": [True]}, "tau must be a non-empty list of numbers"),
        ({"weight": [-1], "tau": [3]}, "weight must be >= 0"),
        ({"weight": [1], "tau": [0]}, "tau must be > 0"),
    ):
        with pytest.raises(ParamsError, match=message):
            blend_grid(bad)

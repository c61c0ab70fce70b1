"""params.yaml and its profiles: overrides merge key by key and typos are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from movierec.errors import ParamsError
from movierec.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_profile_overrides_only_what_it_names() -> None:
    base = load_params(ROOT / "params.yaml")
    quick = load_params(ROOT / "params.yaml", "quick")
    assert quick["train"]["seeds"] == [42] and len(base["train"]["seeds"]) >= 3
    assert quick["evaluate"] == base["evaluate"]  # untouched sections kept
    assert quick["tune"]["seed"] == base["tune"]["seed"]  # untouched sibling kept
    assert quick["tune"]["retrieval"]["trials"] < base["tune"]["retrieval"]["trials"]
    assert set(quick["retrieval"]["ablation"]) == {"id_only", "plus_neighbours"}  # rows replaced whole
    assert len(base["retrieval"]["ablation"]) > 2
    assert quick["retrieval"]["embedding_dim"] == base["retrieval"]["embedding_dim"]


def test_a_profile_key_params_yaml_lacks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"seeds": [1]}}))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "typo.yaml").write_text(yaml.safe_dump({"train": {"seed": [1]}}))
    with pytest.raises(ParamsError, match="'train.seed' is not a setting"):
        load_params(tmp_path / "params.yaml", "typo")
    with pytest.raises(ParamsError, match="no profile 'missing'.*known: typo"):
        load_params(tmp_path / "params.yaml", "missing")

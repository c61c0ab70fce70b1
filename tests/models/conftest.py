"""A tiny trained two-tower model shared by the model tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from models_config import CONFIG, WIDTHS
from synthetic import synthetic_events, synthetic_items


def tiny_world() -> dict:
    """Events, a catalogue and demographics from the synthetic dataset."""
    from movierec.features import item_features
    from movierec.models.inputs import Catalogue, UserDirectory

    events = synthetic_events(n_users=80, n_items=40)
    cut = int(events.column("timestamp").to_numpy().max()) + 1
    items = item_features(events, synthetic_items(40), None, cut, 30, 5)
    users = np.unique(events.column("user_id").to_numpy())
    directory = UserDirectory.from_table(
        pa.table(
            {
                "user_id": pa.array(users, pa.int64()),
                "age": pa.array((users % 40 + 18).astype(np.int32)),
                "gender": ["MF"[u % 2] for u in users],
                "occupation": [["artist", "doctor", "writer"][u % 3] for u in users],
            }
        )
    )
    return {"events": events, "catalogue": Catalogue.from_table(items, WIDTHS), "users": directory, "cut": cut}


@pytest.fixture(scope="session")
def world() -> dict:
    return tiny_world()


@pytest.fixture(scope="session")
def fitted(world: dict):
    from movierec.models.retrieval import fit_retrieval

    return fit_retrieval(world["events"], world["catalogue"], world["users"], CONFIG, seed=7)


@pytest.fixture(scope="session")
def exported(fitted, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from movierec.models.export import save_towers

    out = tmp_path_factory.mktemp("export") / "retrieval"
    save_towers(fitted, out, WIDTHS)
    return out

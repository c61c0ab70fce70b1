"""The chain the report measures is the chain the API serves.

With ``train.final_fit_all: false`` the bundle holds the evaluated models (retrieval fitted
on train+valid, the ranker on the validation window) and the train+valid events' ranking
context. Served from that bundle alone, the API's retrieval (exact index) then ranking must
return, for every test user, the very lists the ranking stage wrote for the evaluation: the
same request path, no shortcut.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bundle_fixture import API_KEY, TinyProject, build_tiny_project, make_settings
from fastapi.testclient import TestClient

from movierec.serving.app import create_app


@pytest.fixture(scope="module")
def evaluated_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return build_tiny_project(tmp_path_factory.mktemp("served-chain"), final_fit_all=False)


def test_api_chain_reproduces_the_evaluated_chain(evaluated_project: TinyProject, tmp_path: Path) -> None:
    root = evaluated_project.root
    seed = evaluated_project.params["train"]["seeds"][0]
    offline = pq.read_table(root / "data" / "recs" / "ranking" / f"chain.seed{seed}.parquet").to_pydict()
    k = evaluated_project.params["ranking"]["candidates"]
    # the bundle alone: it carries the histories of the events it was fitted on (train+valid here)
    settings = make_settings(evaluated_project, tmp_path / "db.sqlite")
    same_lists = 0
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as client:
        for user, expected in zip(offline["user_id"], offline["item_ids"]):
            retrieved = client.post("/api/v1/retrieval", json={"user_id": user, "k": k, "index": "brute"})
            assert retrieved.status_code == 200, retrieved.text
            candidates = [item["item_id"] for item in retrieved.json()["items"]]
            assert set(candidates) == set(expected), f"user {user}: the served candidates differ"
            ranked = client.post("/api/v1/ranking", json={"user_id": user, "item_ids": candidates})
            assert ranked.status_code == 200, ranked.text
            served = [item["item_id"] for item in ranked.json()["items"]]
            same_lists += served == list(expected)
    # the exported ranker matches the in-memory one to 1e-5, so near-ties may swap: allow a few
    assert same_lists >= 0.95 * len(offline["user_id"]), f"{same_lists} of {len(offline['user_id'])} lists identical"


def test_served_ratings_come_from_the_exported_biases(evaluated_project: TinyProject, tmp_path: Path) -> None:
    """The rating head does not beat the biases baseline, so the API's ratings are the biases'."""
    import numpy as np

    from movierec.models.ranking_export import load_rating_biases

    biases = load_rating_biases(evaluated_project.checkpoints / "ranking")
    assert biases is not None and biases.user_ids.size > 0
    settings = make_settings(evaluated_project, tmp_path / "db.sqlite")
    user = int(biases.user_ids[0])
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as client:
        items = [i["item_id"] for i in client.post("/api/v1/retrieval", json={"user_id": user, "k": 5}).json()["items"]]
        ranked = client.post("/api/v1/ranking", json={"user_id": user, "item_ids": items}).json()["items"]
    got = {i["item_id"]: i["rating"] for i in ranked}
    want = biases.predict(np.full(len(items), user), np.array(items))
    assert np.allclose([got[i] for i in items], want, atol=1e-5)


def test_the_service_imports_no_training_code() -> None:
    """The service loads the bundle: importing it pulls in no stage, baseline or trainer."""
    import subprocess
    import sys

    code = (
        "import sys, movierec.serving.app, movierec.serving.service, movierec.serving.server\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('movierec.stages', 'movierec.baselines', "
        "'movierec.models.retrieval', 'movierec.models.towers', 'movierec.models.ranking', "
        "'movierec.models.train', 'movierec.models.tuning', 'movierec.models.ablation', "
        "'movierec.features', 'movierec.data.matrix')) and m != 'movierec.models.ranking_features' "
        "and m != 'movierec.models.ranking_export')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "", f"the service imports training code: {out.stdout.strip()}"

"""Replies written as JSON text have exactly the response models' shape and values."""

from __future__ import annotations

import json
import math

import numpy as np
from fastapi.testclient import TestClient

from movierec.serving.responses import ItemJSON, number, reply
from movierec.serving.schemas import RankingResponse, RecommendationResponse, ScoredItem


def _models_json(rec, item_ids, scores, ratings=None, **fields) -> dict:
    items = []
    for n, (item, score) in enumerate(zip(item_ids, scores)):
        meta = rec.item(item)
        items.append(
            ScoredItem(
                item_id=item,
                score=score,
                title=meta["title"],
                year=meta["year"],
                genres=meta["genres"],
                rating=None if ratings is None else float(ratings[n]),
            )
        )
    model = (RankingResponse if "index" not in fields else RecommendationResponse)(items=items, **fields)
    return json.loads(model.model_dump_json())


def test_a_reply_equals_the_response_models_encoding(client: TestClient) -> None:
    rec = client.app.state.service.recommender
    ids = rec.catalogue.item_id[::3].tolist()
    scores = np.linspace(-2.5, 3.25, len(ids)).tolist()
    ratings = np.linspace(1, 5, len(ids))
    fields = {"model_version": rec.version, "index": "faiss", "is_fallback": False, "fallback_reason": None}
    got = json.loads(reply(rec.item_json.items(rec.row_of, ids, scores), **fields).body)
    assert got == _models_json(rec, ids, scores, **fields)
    got = json.loads(reply(rec.item_json.items(rec.row_of, ids, scores, ratings), model_version="v").body)
    assert got == _models_json(rec, ids, scores, ratings, model_version="v")


def test_titles_that_need_escaping_and_odd_numbers_stay_valid_json() -> None:
    item_json = ItemJSON([{"title": 'Say "Anything…" \\ \n', "year": None, "genres": ["Drama", "Ünïcode"]}])
    text = reply(item_json.items({7: 0}, [7], [float("nan")], [float("inf")]), model_version="v").body
    body = json.loads(text)
    assert body["items"][0]["title"] == 'Say "Anything…" \\ \n' and body["items"][0]["score"] is None
    assert body["items"][0]["rating"] is None and body["items"][0]["genres"] == ["Drama", "Ünïcode"]
    assert number(1e-300) == "1e-300" and math.isclose(float(number(0.1)), 0.1)


def test_the_chain_reply_matches_its_schema(client: TestClient) -> None:
    user = int(next(iter(client.app.state.service.recommender.histories)))
    r = client.post("/api/v1/recommendations", json={"user_id": user, "k": 7})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.headers["x-request-id"]
    RecommendationResponse.model_validate(r.json())
    assert len(r.json()["items"]) == 7

"""Feedback events by type and the served bundle's offline NDCG@10, through the app."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from bundle_fixture import metric_value
from fastapi.testclient import TestClient

from movierec.serving.metrics import FEEDBACK_TYPES, offline_ndcg
from movierec.serving.schemas import FeedbackRequest


def test_every_feedback_type_is_counted_from_zero() -> None:
    assert set(FEEDBACK_TYPES) == set(typing.get_args(FeedbackRequest.model_fields["event"].annotation))


def test_stored_feedback_is_counted_by_type(client: TestClient) -> None:
    before = client.get("/metrics").text
    assert 'feedback_events_total{event="watch"}' in before  # exported before the first event
    item = int(client.get("/api/v1/popular?k=1").json()["items"][0]["item_id"])
    assert client.post("/api/v1/feedback", json={"user_id": 5, "item_id": item, "event": "click"}).status_code == 201
    assert client.post("/api/v1/feedback", json={"user_id": 5, "item_id": item, "rating": 3.5}).status_code == 201
    refused = client.post("/api/v1/feedback", json={"user_id": 5, "item_id": item, "event": "rating"})
    assert refused.status_code == 422  # a rating event without a rating: not stored, not counted
    after = client.get("/metrics").text

    def delta(event: str) -> float:
        return metric_value(after, "feedback_events_total", event=event) - metric_value(
            before, "feedback_events_total", event=event
        )

    assert (delta("click"), delta("rating"), delta("view")) == (1, 1, 0)


def test_the_served_bundles_offline_ndcg_comes_from_its_manifest(client: TestClient, manifest: dict[str, Any]) -> None:
    state = client.app.state.service
    state.swap(state.recommender)  # other tests' apps swap bundles in this process: publish this one
    expected = manifest["metrics"]["test"]["chain"]["ndcg@10"]
    assert metric_value(client.get("/metrics").text, "model_offline_ndcg_at_10") == pytest.approx(expected)
    assert offline_ndcg({"metrics": {"test": {}}}) != offline_ndcg({"metrics": {"test": {}}})  # NaN when absent

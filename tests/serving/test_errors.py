"""No input gives a 500, and a 500 that does happen is counted (issue 9, findings 2 and 3)."""

from __future__ import annotations

import json

import pytest
from bundle_fixture import metric_value
from fastapi.testclient import TestClient

ENDPOINTS = ("/api/v1/retrieval", "/api/v1/ranking", "/api/v1/recommendations", "/api/v1/feedback")


def _nested(depth: int) -> bytes:
    return b'{"user_id": 1, "history": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("depth", [3, 485, 975, 5000, 30000])
def test_deeply_nested_input_is_a_small_4xx_never_a_500(client: TestClient, endpoint: str, depth: int) -> None:
    # 485 to 975 levels once crashed the 422 formatter with RecursionError (a 500 and 150 KB of
    # traceback per request); deeper still, the JSON parser itself gives up: a 400
    r = client.post(endpoint, content=_nested(depth), headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), (depth, r.status_code, r.text[:300])
    assert len(r.content) < 16_000  # the echo of the input is bounded
    json.loads(r.content)  # and valid JSON


def test_the_echo_of_bad_input_is_bounded_and_many_errors_are_truncated(client: TestClient) -> None:
    long_text = "x" * 50_000
    r = client.post("/api/v1/retrieval", json={"user_id": long_text, "k": 3})
    assert r.status_code == 422 and len(r.content) < 4_000
    assert r.json()["detail"][0]["input"].endswith("...")
    r = client.post("/api/v1/ranking", json={"user_id": 1, "item_ids": ["a"] * 900})
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == 51 and detail[-1]["type"] == "truncated"
    assert "850 more errors" in detail[-1]["msg"]


def test_an_unhandled_error_is_a_500_counted_in_the_metrics(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    recommender = client.app.state.service.recommender

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the retrieval path")

    monkeypatch.setattr(recommender, "retrieve", broken)
    before = client.get("/metrics").text
    unguarded = TestClient(client.app, raise_server_exceptions=False)  # the same app, as a remote client sees it
    r = unguarded.post("/api/v1/retrieval", json={"user_id": 1, "k": 3})
    assert r.status_code == 500
    after = client.get("/metrics").text
    counted = metric_value(after, "recommendation_requests_total", endpoint="retrieval", status="500")
    assert counted - metric_value(before, "recommendation_requests_total", endpoint="retrieval", status="500") == 1


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("/api/v1/retrieval", {"user_id": True, "k": 3}, "user_id"),
        ("/api/v1/retrieval", {"user_id": "1", "k": 3}, "user_id"),
        ("/api/v1/retrieval", {"user_id": 1.0, "k": 3}, "user_id"),
        ("/api/v1/retrieval", {"user_id": 1, "k": "5"}, "k"),
        ("/api/v1/retrieval", {"history": [1, "2"], "k": 3}, "history"),
        ("/api/v1/ranking", {"user_id": 1, "item_ids": [True]}, "item_ids"),
        ("/api/v1/recommendations", {"user_id": 1, "candidates": True}, "candidates"),
        ("/api/v1/feedback", {"user_id": 1, "item_id": "3", "event": "click"}, "item_id"),
    ],
)
def test_ids_and_counts_are_strict_integers(client: TestClient, endpoint: str, body: dict, field: str) -> None:
    # lax parsing once took `user_id: true` for user 1 and "1" for 1
    r = client.post(endpoint, json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"][0]["loc"]


def test_the_schema_documents_every_error_reply(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/api/v1/retrieval", "post"): {"400", "413", "422", "503"},
        ("/api/v1/recommendations", "post"): {"400", "413", "422", "503"},
        ("/api/v1/feedback", "post"): {"400", "413", "422", "503"},
        ("/api/v1/items/{item_id}", "get"): {"404", "422", "503"},
        ("/admin/reload", "post"): {"400", "403", "413", "422"},
    }
    for (path, method), codes in expected.items():
        documented = set(paths[path][method]["responses"])
        assert codes <= documented, (path, codes - documented)
    # and the replies have the documented shape
    missing = client.get("/api/v1/items/987654321")
    assert missing.status_code == 404 and isinstance(missing.json()["detail"], str)


def test_dropped_request_log_rows_are_counted_in_the_metrics(client: TestClient, tmp_path) -> None:
    import queue as queues

    from movierec.serving.store import RequestLog

    writer = RequestLog(tmp_path / "log.sqlite", max_queue=1)
    try:
        stalled: queues.Queue = queues.Queue(maxsize=1)  # a writer that has stopped draining its queue
        stalled.put_nowait(("row",))
        writer.queue = stalled
        before = client.get("/metrics").text
        for n in range(3):
            writer.log(f"r{n}", 1, "retrieval", "v", [1], [0.5], 1.0, False, None)
        after = client.get("/metrics").text
    finally:
        writer.queue = queues.Queue()
        writer.close()
    assert writer.dropped == 3
    assert metric_value(after, "request_log_dropped_total") - metric_value(before, "request_log_dropped_total") == 3

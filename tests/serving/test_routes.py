"""The REST API on a tiny real bundle, as a client sees it: status codes, bodies, headers, metrics, logs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle_fixture import API_KEY, TinyProject, make_settings, metric_value
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.settings import Settings
from movierec.serving.store import read_request_logs

RETRIEVAL, RANKING, RECS = "/api/v1/retrieval", "/api/v1/ranking", "/api/v1/recommendations"
KNOWN_USER = 3
COLD_USER = 900_001  # never in the data; each test that sends feedback uses a user of its own


def ids(response: Any) -> list[int]:
    return [item["item_id"] for item in response.json()["items"]]


def scores(response: Any) -> list[float]:
    return [item["score"] for item in response.json()["items"]]


def non_increasing(values: list[float]) -> bool:
    return all(a >= b - 1e-6 for a, b in zip(values, values[1:]))


def error_text(response: Any) -> str:
    return str(response.json()["detail"])


# --- retrieval --------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["scann", "faiss", "brute"])
def test_retrieval_for_a_known_user_returns_k_unseen_items_best_first(
    client: TestClient, manifest: dict[str, Any], histories: dict[int, set[int]], index: str
) -> None:
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 10, "index": index})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 10 and len(set(ids(r))) == 10
    assert not set(ids(r)) & histories[KNOWN_USER], "a seen item came back with exclude_seen (the default)"
    assert non_increasing(scores(r)), scores(r)
    assert body["model_version"] == manifest["version"]
    assert body["index"] == index
    assert body["is_fallback"] is False and body["fallback_reason"] is None
    assert all(item["title"] and item["year"] for item in body["items"])
    assert r.headers["X-Request-ID"]


def test_retrieval_uses_the_configured_index_by_default(client: TestClient, settings: Settings) -> None:
    # "auto" (the default): exact scoring on a catalogue this small, FAISS on a large one
    assert settings.default_index == "auto"
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 5})
    assert r.status_code == 200 and r.json()["index"] == "brute"
    from movierec.serving.routes.recommend import resolve_index

    assert resolve_index("auto", 1_682, 10_000) == "brute" and resolve_index("auto", 62_423, 10_000) == "faiss"
    assert resolve_index("scann", 10, 10_000) == "scann"


def test_every_index_agrees_with_exact_search_on_a_tiny_catalogue(client: TestClient) -> None:
    lists = {
        index: ids(client.post(RETRIEVAL, json={"user_id": 5, "k": 5, "index": index}))
        for index in ("scann", "faiss", "brute")
    }
    assert set(lists["faiss"]) == set(lists["brute"]) == set(lists["scann"]), lists


def test_an_approximate_index_that_misses_and_misorders_items_still_answers_best_first(
    client: TestClient, histories: dict[int, set[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorflow as tf

    every = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 1000, "exclude_seen": False, "index": "brute"})
    exact = ids(every)
    score_of = dict(zip(exact, scores(every)))
    worst_first = exact[::-1][:12]  # an index that finds only a few items, and in the wrong order
    rec = client.app.state.service.recommender
    monkeypatch.setattr(rec, "scann", lambda **_: {"item_ids": tf.constant([worst_first], tf.int64)})
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 15, "index": "scann"})
    assert r.status_code == 200 and r.json()["index"] == "scann"
    assert len(ids(r)) == 15 and not set(ids(r)) & histories[KNOWN_USER], "backfilled to k unseen items"
    assert non_increasing(scores(r)), scores(r)
    # every item is scored as the exact path scores it (the towers blended with the neighbours)
    assert scores(r) == pytest.approx([score_of[i] for i in ids(r)], abs=1e-5)
    # the index's own candidates are kept unless better-scored items (neighbours, backfill) beat them
    dropped = set(worst_first) - histories[KNOWN_USER] - set(ids(r))
    assert all(score_of[i] <= min(scores(r)) + 1e-6 for i in dropped)


def test_unknown_user_without_history_gets_the_popular_fallback(client: TestClient) -> None:
    r = client.post(RETRIEVAL, json={"user_id": COLD_USER, "k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["is_fallback"] is True
    assert body["fallback_reason"] == "unknown_user_no_history"
    assert body["index"] == "popular"
    assert len(body["items"]) == 7
    popular = client.get("/api/v1/popular", params={"k": 7})
    assert ids(r) == ids(popular), "the fallback is the popular list"


def test_unknown_user_with_a_history_is_personalised_and_the_history_is_excluded(client: TestClient) -> None:
    history = [1, 5, 9, 13]
    for body in ({"user_id": COLD_USER + 1, "history": history, "k": 10}, {"history": history, "k": 10}):
        r = client.post(RETRIEVAL, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["is_fallback"] is False and r.json()["fallback_reason"] is None
        assert len(ids(r)) == 10 and not set(ids(r)) & set(history)
        assert non_increasing(scores(r))


def test_a_history_of_unknown_items_only_falls_back(client: TestClient) -> None:
    r = client.post(RETRIEVAL, json={"history": [10_000_000, 10_000_001], "k": 3})
    assert r.status_code == 200 and r.json()["is_fallback"] is True and len(ids(r)) == 3


def test_filters_are_respected_and_k_is_kept(
    client: TestClient, catalogue: dict[int, dict[str, Any]], histories: dict[int, set[int]]
) -> None:
    filters = {"genres": ["Comedy", "Drama"], "year_min": 1990, "year_max": 2012}
    eligible = {
        i
        for i, meta in catalogue.items()
        if set(meta["genres"]) & {"Comedy", "Drama"} and meta["year"] and 1990 <= meta["year"] <= 2012
    }
    unseen = eligible - histories[KNOWN_USER]
    assert len(unseen) >= 5, "the synthetic catalogue should allow five filtered unseen items"
    for index in ("scann", "faiss", "brute"):
        r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 5, "filters": filters, "index": index})
        assert r.status_code == 200, r.text
        assert len(ids(r)) == 5, "filters shrank the list: no backfill"
        assert set(ids(r)) <= unseen
        for item in r.json()["items"]:
            assert set(item["genres"]) & {"Comedy", "Drama"} and 1990 <= item["year"] <= 2012
        # asking for more than the catalogue allows returns every eligible item, no more
        r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 1000, "filters": filters, "index": index})
        assert set(ids(r)) == unseen and len(ids(r)) == len(unseen)
        assert non_increasing(scores(r))


def test_filters_apply_to_the_fallback_too(client: TestClient) -> None:
    r = client.post(RETRIEVAL, json={"user_id": COLD_USER, "k": 4, "filters": {"genres": ["Sci-Fi"], "year_max": 2000}})
    assert r.status_code == 200 and r.json()["is_fallback"] is True and ids(r)
    assert all("Sci-Fi" in item["genres"] and item["year"] <= 2000 for item in r.json()["items"])


def test_exclude_seen_false_may_return_seen_items(
    client: TestClient, histories: dict[int, set[int]], catalogue: dict[int, dict[str, Any]]
) -> None:
    seen = histories[KNOWN_USER]
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 1000, "exclude_seen": False})
    assert r.status_code == 200 and set(ids(r)) == set(catalogue), "the whole catalogue, seen items included"
    assert set(ids(r)) & seen
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 1000})
    assert set(ids(r)) == set(catalogue) - seen


def test_unknown_genre_filter_is_a_422_naming_it(client: TestClient) -> None:
    r = client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "filters": {"genres": ["Comedy", "Polka"]}})
    assert r.status_code == 422 and "Polka" in error_text(r)
    assert r.json()["detail"][0]["loc"] == ["body", "filters", "genres", 1]


# --- ranking ------------------------------------------------------------------------------------


def test_ranking_reorders_the_candidates_by_score_with_metadata(client: TestClient, manifest: dict[str, Any]) -> None:
    candidates = [2, 4, 6, 8, 10, 12, 14, 16]
    r = client.post(RANKING, json={"user_id": KNOWN_USER, "item_ids": candidates})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(ids(r)) == sorted(candidates) and non_increasing(scores(r))
    assert body["model_version"] == manifest["version"]
    for item in body["items"]:
        assert item["title"].startswith(f"Movie {item['item_id']},") and item["year"] == 1980 + item["item_id"]
        assert item["genres"] and isinstance(item["rating"], float)
    top = client.post(RANKING, json={"user_id": KNOWN_USER, "item_ids": candidates, "k": 3})
    assert top.status_code == 200 and ids(top) == ids(r)[:3]


def test_ranking_for_a_new_user_from_a_history_and_demographics(client: TestClient) -> None:
    r = client.post(
        RANKING,
        json={
            "history": [1, 2],
            "item_ids": [3, 4, 5],
            "user_features": {"age": 30, "gender": "F", "occupation": "writer"},
        },
    )
    assert r.status_code == 200 and sorted(ids(r)) == [3, 4, 5] and non_increasing(scores(r))


@pytest.mark.parametrize("item_ids, named", [([1, 2, 99_999], "99999"), ([1, 2, 2], "duplicates")])
def test_ranking_unknown_or_duplicate_items_is_a_422_naming_them(
    client: TestClient, item_ids: list[int], named: str
) -> None:
    r = client.post(RANKING, json={"user_id": KNOWN_USER, "item_ids": item_ids})
    assert r.status_code == 422 and named in error_text(r)
    assert r.json()["detail"][0]["loc"] == ["body", "item_ids"]


# --- recommendations ------------------------------------------------------------------------------


def test_recommendations_return_k_ranked_unseen_items(
    client: TestClient, manifest: dict[str, Any], histories: dict[int, set[int]]
) -> None:
    r = client.post(RECS, json={"user_id": KNOWN_USER, "k": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(ids(r)) == 6 and len(set(ids(r))) == 6 and not set(ids(r)) & histories[KNOWN_USER]
    assert body["model_version"] == manifest["version"] and body["is_fallback"] is False
    assert non_increasing(scores(r)), "the chain returns the ranker's order"
    # the chain's order is the ranker's order of the retrieved candidates
    ranked = client.post(
        RANKING,
        json={"user_id": KNOWN_USER, "item_ids": ids(client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 100}))},
    )
    assert ids(r) == ids(ranked)[:6]


def test_recommendations_with_diversity_still_return_k_distinct_items(client: TestClient) -> None:
    plain = client.post(RECS, json={"user_id": KNOWN_USER, "k": 8})
    diverse = client.post(RECS, json={"user_id": KNOWN_USER, "k": 8, "diversity": 0.9})
    assert diverse.status_code == 200, diverse.text
    assert len(ids(diverse)) == 8 and len(set(ids(diverse))) == 8
    assert set(ids(diverse)) <= set(ids(client.post(RECS, json={"user_id": KNOWN_USER, "k": 100})))

    def genre_count(response: Any) -> int:
        return len({g for item in response.json()["items"] for g in item["genres"]})

    assert genre_count(diverse) >= genre_count(plain)


def test_recommendations_for_an_unknown_user_fall_back_with_a_reason(client: TestClient) -> None:
    r = client.post(RECS, json={"user_id": COLD_USER + 2, "k": 5})
    assert r.status_code == 200 and len(ids(r)) == 5
    assert r.json()["is_fallback"] is True and r.json()["fallback_reason"] == "unknown_user_no_history"


# --- catalogue --------------------------------------------------------------------------------------


def test_item_metadata_and_404(client: TestClient) -> None:
    r = client.get("/api/v1/items/5")
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == 5 and body["title"] == "Movie 5, The (1985)" and body["year"] == 1985
    assert body["genres"] and body["interactions"] >= 0 and body["recent_interactions"] >= 0
    missing = client.get("/api/v1/items/123456")
    assert missing.status_code == 404 and "123456" in error_text(missing)


@pytest.mark.parametrize("k", [5, 39, 40, 1000])
def test_similar_items_never_contain_the_item_itself(client: TestClient, catalogue: dict[int, Any], k: int) -> None:
    r = client.get("/api/v1/items/5/similar", params={"k": k})
    assert r.status_code == 200, r.text
    assert 5 not in ids(r)
    assert len(ids(r)) == min(k, len(catalogue) - 1) == len(set(ids(r)))
    assert all(isinstance(s, float) for s in scores(r)) and non_increasing(scores(r))


def test_similar_for_an_unknown_item_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/items/123456/similar").status_code == 404


def test_popular_with_and_without_a_genre(client: TestClient) -> None:
    r = client.get("/api/v1/popular", params={"k": 5})
    assert r.status_code == 200 and len(ids(r)) == 5 and non_increasing(scores(r))
    comedy = client.get("/api/v1/popular", params={"k": 5, "genre": "Comedy"})
    assert comedy.status_code == 200 and ids(comedy)
    assert all("Comedy" in item["genres"] for item in comedy.json()["items"])
    unknown = client.get("/api/v1/popular", params={"genre": "Polka"})
    assert unknown.status_code == 422 and "Polka" in error_text(unknown)


# --- feedback -----------------------------------------------------------------------------------------


def test_feedback_is_reflected_by_the_next_request_without_retraining(client: TestClient) -> None:
    user = 11
    before = ids(client.post(RETRIEVAL, json={"user_id": user, "k": 5}))
    r = client.post("/api/v1/feedback", json={"user_id": user, "item_id": before[0], "rating": 4.5})
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == user and r.json()["item_id"] == before[0] and r.json()["event"] == "rating"
    assert isinstance(r.json()["id"], int)
    after = ids(client.post(RETRIEVAL, json={"user_id": user, "k": 5}))
    assert before[0] not in after and len(after) == 5
    assert before[0] not in ids(client.post(RECS, json={"user_id": user, "k": 5}))
    assert before[0] in ids(client.post(RETRIEVAL, json={"user_id": user, "k": 1000, "exclude_seen": False}))


def test_feedback_turns_a_cold_user_warm(client: TestClient) -> None:
    user = COLD_USER + 3
    assert client.post(RETRIEVAL, json={"user_id": user, "k": 5}).json()["is_fallback"] is True
    r = client.post("/api/v1/feedback", json={"user_id": user, "item_id": 6, "event": "view"})
    assert r.status_code == 201 and r.json()["event"] == "view"
    after = client.post(RETRIEVAL, json={"user_id": user, "k": 5})
    assert after.json()["is_fallback"] is False and 6 not in ids(after)


def test_feedback_for_an_unknown_item_is_a_422(client: TestClient) -> None:
    r = client.post("/api/v1/feedback", json={"user_id": 1, "item_id": 123456, "rating": 3})
    assert r.status_code == 422 and "123456" in error_text(r)


def test_a_rating_event_needs_a_rating(client: TestClient) -> None:
    r = client.post("/api/v1/feedback", json={"user_id": 1, "item_id": 2, "event": "rating"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rating"]


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, loc",
    [
        (RETRIEVAL, {"user_id": 1, "k": 0}, "k"),
        (RETRIEVAL, {"user_id": 1, "k": 1001}, "k"),
        (RETRIEVAL, {"user_id": 1, "k": "ten"}, "k"),
        (RETRIEVAL, {"user_id": "one"}, "user_id"),
        (RETRIEVAL, {"user_id": -1}, "user_id"),
        (RETRIEVAL, {"user_id": 1, "index": "annoy"}, "index"),
        (RETRIEVAL, {"user_id": 1, "colour": "red"}, "colour"),
        (RETRIEVAL, {"user_id": 1, "filters": {"year_min": 2000, "year_max": 1990}}, "filters"),
        (RETRIEVAL, {"user_id": 1, "filters": {"mood": "sad"}}, "mood"),
        (RETRIEVAL, {"user_id": 1, "user_features": {"age": 300}}, "age"),
        (RETRIEVAL, {"k": 5}, "user_id"),
        (RETRIEVAL, {"history": [], "k": 5}, "user_id"),
        (RANKING, {"user_id": 1, "item_ids": []}, "item_ids"),
        (RANKING, {"user_id": 1, "item_ids": list(range(1, 1002))}, "item_ids"),
        (RANKING, {"user_id": 1}, "item_ids"),
        (RANKING, {"item_ids": [1, 2]}, "user_id"),
        (RANKING, {"user_id": 1, "item_ids": [1], "k": 0}, "k"),
        (RECS, {"user_id": 1, "diversity": 1.5}, "diversity"),
        (RECS, {"user_id": 1, "candidates": 0}, "candidates"),
        (RECS, {"user_id": 1, "unknown": True}, "unknown"),
        ("/api/v1/feedback", {"user_id": 1, "item_id": 2, "rating": 9}, "rating"),
        ("/api/v1/feedback", {"user_id": 1, "item_id": 2, "event": "like"}, "event"),
        ("/api/v1/feedback", {"item_id": 2, "rating": 3}, "user_id"),
    ],
)
def test_invalid_fields_are_422s_that_locate_the_field(
    client: TestClient, path: str, body: dict[str, Any], loc: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    locations = [[str(part) for part in error["loc"]] for error in r.json()["detail"]]
    assert any(loc in location for location in locations), locations


def test_invalid_json_and_query_values_are_422s(client: TestClient) -> None:
    r = client.post(RETRIEVAL, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/v1/popular", params={"k": 0}).status_code == 422
    assert client.get("/api/v1/popular", params={"k": "many"}).status_code == 422
    assert client.get("/api/v1/items/abc").status_code == 422
    assert client.get("/api/v1/items/1/similar", params={"k": 1001}).status_code == 422


def test_a_body_over_the_limit_is_a_413_with_or_without_content_length(client: TestClient, settings: Settings) -> None:
    before = client.get("/metrics").text
    size = settings.max_body_bytes + 1
    padded = b'{"user_id": 1' + b" " * size + b"}"
    r = client.post(RETRIEVAL, content=padded, headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(settings.max_body_bytes) in error_text(r)

    def chunks() -> Iterator[bytes]:  # a generator body is sent chunked, without Content-Length
        yield b'{"user_id": 1'
        for _ in range(size // 8192 + 1):
            yield b" " * 8192
        yield b"}"

    r = client.post(RETRIEVAL, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert str(settings.max_body_bytes) in error_text(r)
    after = client.get("/metrics").text
    assert (
        metric_value(after, "recommendation_requests_total", endpoint="retrieval", status="413")
        - metric_value(before, "recommendation_requests_total", endpoint="retrieval", status="413")
    ) == 2
    # a body just under the limit is fine
    ok = client.post(
        RETRIEVAL,
        content=b'{"user_id": 1' + b" " * (settings.max_body_bytes - 100) + b"}",
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 200


def test_values_json_cannot_carry_are_422s_not_500s(client: TestClient) -> None:
    # Python's json module (and so requests) writes NaN and Infinity; JSON may escape a lone surrogate,
    # which is not text: neither may reach the models, and echoing them in the 422 must not fail
    for raw in (
        b'{"user_id": 1, "k": NaN}',
        b'{"user_id": 1, "user_features": {"age": NaN}}',
        b'{"user_id": 1, "k": Infinity}',
        b'{"user_id": 1e400}',
        b'{"user_id": 1, "diversity": -Infinity}',
        b'{"user_id": 1, "user_features": {"occupation": "\\udc80x"}}',
        b'{"user_id": 1, "user_features": {"gender": "\\ud800"}}',
        b'{"user_id": 1, "filters": {"genres": ["\\udfff"]}}',
        b'{"user_id": "\\ud800"}',
        b'{"user_id": 1, "\\ud800": 1}',
    ):
        r = client.post(RECS, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["detail"][0]["loc"][0] == "body"
    r = client.post(
        "/admin/reload",
        content=b'{"path": "\\ud800"}',
        headers={"content-type": "application/json", "X-API-Key": API_KEY},
    )
    assert r.status_code == 422, r.text


# --- operations -------------------------------------------------------------------------------------------


def test_health_and_ready(
    client: TestClient, manifest: dict[str, Any], histories: dict[int, set[int]], catalogue: dict[int, Any]
) -> None:
    assert client.get("/health").status_code == 200 and client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["model_version"] == manifest["version"]
    assert body["items"] == len(catalogue) and body["users"] == len(histories)
    assert body["load_seconds"] > 0 and body["loaded_at"] > 0 and body["reason"] is None


def test_metrics_expose_requests_latency_fallbacks_and_the_bundle(client: TestClient, manifest: dict[str, Any]) -> None:
    # The metrics are the process's: other tests' apps (reloads in test_registry,
    # test_reload, test_bundle_integrity) swap bundles in this same process and mark the
    # one they replaced 0. Publish this app's bundle again, as its swap did at start-up.
    state = client.app.state.service
    state.swap(state.recommender)
    before = client.get("/metrics").text
    client.post(RECS, json={"user_id": KNOWN_USER, "k": 3})
    client.post(RETRIEVAL, json={"user_id": COLD_USER, "k": 3})
    client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 0})
    client.get("/api/v1/items/123456")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text

    def delta(name: str, **labels: str) -> float:
        return metric_value(text, name, **labels) - metric_value(before, name, **labels)

    assert delta("recommendation_requests_total", endpoint="recommendations", status="200") == 1
    assert delta("recommendation_requests_total", endpoint="retrieval", status="200") == 1
    assert delta("recommendation_requests_total", endpoint="retrieval", status="422") == 1
    assert delta("recommendation_requests_total", endpoint="item", status="404") == 1
    assert delta("recommendation_latency_seconds_count", endpoint="recommendations", stage="retrieval") == 1
    assert delta("recommendation_latency_seconds_count", endpoint="recommendations", stage="ranking") == 1
    assert delta("recommendation_latency_seconds_count", endpoint="recommendations", stage="total") == 1
    assert delta("fallback_total", reason="unknown_user_no_history") == 1
    assert metric_value(text, "model_load_time_seconds") > 0
    assert metric_value(text, "active_users_count") >= 1
    assert metric_value(text, "model_bundle_info", version=manifest["version"]) == 1
    ranked = client.post(RANKING, json={"user_id": KNOWN_USER, "item_ids": [1, 2, 3]})
    assert ranked.status_code == 200
    after = client.get("/metrics").text
    assert (
        metric_value(after, "recommendation_latency_seconds_count", endpoint="ranking", stage="ranking")
        - metric_value(text, "recommendation_latency_seconds_count", endpoint="ranking", stage="ranking")
    ) == 1


def test_feedback_is_counted_with_its_status(client: TestClient) -> None:
    before = client.get("/metrics").text
    assert client.post("/api/v1/feedback", json={"user_id": 12, "item_id": 3, "event": "click"}).status_code == 201
    after = client.get("/metrics").text
    assert (
        metric_value(after, "recommendation_requests_total", endpoint="feedback", status="201")
        - metric_value(before, "recommendation_requests_total", endpoint="feedback", status="201")
    ) == 1


def test_unmatched_paths_do_not_create_a_metric_series_each(client: TestClient) -> None:
    for n in range(3):
        assert client.get(f"/no/such/path/{n}").status_code == 404
    text = client.get("/metrics").text
    assert "/no/such/path" not in text
    assert metric_value(text, "recommendation_requests_total", status="404") >= 3


def test_the_request_log_records_what_was_served(
    client: TestClient, settings: Settings, manifest: dict[str, Any]
) -> None:
    warm = client.post(RECS, json={"user_id": KNOWN_USER, "k": 4})
    cold = client.post(RETRIEVAL, json={"user_id": COLD_USER, "k": 3})
    ranked = client.post(RANKING, json={"user_id": KNOWN_USER, "item_ids": [1, 2, 3]})
    client.app.state.service.log.flush()
    rows = {row["request_id"]: row for row in read_request_logs(settings.database_path)}
    for response, endpoint, fallback in (
        (warm, "recommendations", False),
        (cold, "retrieval", True),
        (ranked, "ranking", False),
    ):
        request_id = response.headers["X-Request-ID"]
        assert request_id in rows, f"{endpoint}: no logged row for request {request_id}"
        row = rows[request_id]
        assert row["endpoint"] == endpoint and row["model_version"] == manifest["version"]
        assert row["item_ids"] == ids(response)
        assert row["scores"] == pytest.approx(scores(response), abs=1e-5)
        assert row["latency_ms"] > 0 and row["time"] > 0
        assert bool(row["is_fallback"]) is fallback
        assert row["fallback_reason"] == ("unknown_user_no_history" if fallback else None)
    assert rows[cold.headers["X-Request-ID"]]["user_id"] == COLD_USER
    assert rows[warm.headers["X-Request-ID"]]["user_id"] == KNOWN_USER
    assert len({r.headers["X-Request-ID"] for r in (warm, cold, ranked)}) == 3


# --- admin -------------------------------------------------------------------------------------------------


def test_reload_needs_the_right_key(client: TestClient) -> None:
    assert client.post("/admin/reload", json={}).status_code == 401
    assert client.post("/admin/reload", json={}, headers={"X-API-Key": "wrong"}).status_code == 401
    # a header value that is not ASCII is a wrong key, not a crash
    assert client.post("/admin/reload", json={}, headers={"X-API-Key": "clé".encode("latin-1")}).status_code == 401


def test_reload_with_the_right_key_swaps_in_the_bundle(client: TestClient, manifest: dict[str, Any]) -> None:
    loaded_at = client.get("/ready").json()["loaded_at"]
    r = client.post("/admin/reload", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reloaded"] is True and body["reason"] is None
    assert body["model_version"] == body["previous_version"] == manifest["version"]
    assert body["load_seconds"] > 0
    assert client.get("/ready").json()["loaded_at"] > loaded_at
    assert client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 3}).status_code == 200


def test_reload_from_a_missing_folder_keeps_serving_the_old_bundle(
    client: TestClient, manifest: dict[str, Any], tmp_path: Path
) -> None:
    r = client.post("/admin/reload", json={"path": str(tmp_path / "nowhere")}, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200
    body = r.json()
    assert body["reloaded"] is False and "manifest.json" in body["reason"]
    assert body["model_version"] == manifest["version"]
    assert client.get("/ready").json()["model_version"] == manifest["version"]
    assert client.post(RETRIEVAL, json={"user_id": KNOWN_USER, "k": 3}).json()["model_version"] == manifest["version"]


def test_reload_of_a_tampered_bundle_is_refused(
    client: TestClient, tiny_project: TinyProject, manifest: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(tiny_project.checkpoints, copy)
    with open(copy / "ranking" / "ranker.json", "a", encoding="utf-8") as handle:
        handle.write(" ")
    r = client.post("/admin/reload", json={"path": str(copy)}, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200
    body = r.json()
    assert body["reloaded"] is False and "ranking/ranker.json" in body["reason"] and "manifest" in body["reason"]
    assert body["model_version"] == manifest["version"]
    assert client.get("/ready").json()["model_version"] == manifest["version"]
    assert client.post(RECS, json={"user_id": KNOWN_USER, "k": 3}).status_code == 200


def test_reload_of_an_intact_copy_is_accepted(
    client: TestClient, tiny_project: TinyProject, manifest: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_project.checkpoints, copy)
    r = client.post("/admin/reload", json={"path": str(copy)}, headers={"X-API-Key": API_KEY})
    assert r.json()["reloaded"] is True and r.json()["model_version"] == manifest["version"]
    back = client.post("/admin/reload", json={}, headers={"X-API-Key": API_KEY})
    assert back.json()["reloaded"] is True


def test_admin_routes_are_off_without_a_configured_key(tiny_project: TinyProject, tmp_path: Path) -> None:
    app = create_app(make_settings(tiny_project, tmp_path / "db.sqlite", api_key=""), load=False)
    with TestClient(app) as other:
        r = other.post("/admin/reload", json={}, headers={"X-API-Key": ""})
        assert r.status_code == 403 and "MOVIEREC_API_KEY" in error_text(r)
        assert other.post("/admin/reload", json={}, headers={"X-API-Key": "anything"}).status_code == 403


# --- not ready ------------------------------------------------------------------------------------------------


def test_without_a_bundle_the_service_is_alive_but_not_ready(tiny_project: TinyProject, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    app = create_app(make_settings(tiny_project, tmp_path / "db.sqlite", bundle_dir=empty))
    with TestClient(app) as other:
        assert other.get("/health").status_code == 200
        ready = other.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and "manifest.json" in ready.json()["reason"]
        for method, path, body in (
            ("POST", RETRIEVAL, {"user_id": 1}),
            ("POST", RANKING, {"user_id": 1, "item_ids": [1]}),
            ("POST", RECS, {"user_id": 1}),
            ("POST", "/api/v1/feedback", {"user_id": 1, "item_id": 1, "rating": 3}),
            ("GET", "/api/v1/items/1", None),
            ("GET", "/api/v1/popular", None),
        ):
            r = other.request(method, path, json=body)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert "no bundle loaded" in error_text(r)
        assert other.get("/metrics").status_code == 200

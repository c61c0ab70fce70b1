"""The reply cache: repeats are served from memory, and never a reply the inputs no longer give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bundle_fixture import TinyProject, make_settings
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.reply_cache import HIT, MISS, Reply, ReplyCache, cache_key
from movierec.serving.schemas import RecommendationRequest, RetrievalRequest
from movierec.serving.service import Result

RETRIEVAL = "/api/v1/retrieval"
RECS = "/api/v1/recommendations"


def _reply(n: int, text: str = "x") -> Reply:
    return Reply.of((text * n).encode(), Result([1, 2], [0.5, 0.25]))


def _counts() -> tuple[float, float]:
    return HIT._value.get(), MISS._value.get()


# --- the cache's own logic -------------------------------------------------------------------------------


def test_the_least_recently_used_replies_go_first_past_the_byte_bound() -> None:
    one = _reply(1000)
    cache = ReplyCache(max_bytes=3 * one.size)
    for key in "abc":
        cache.put("v1", key, _reply(1000, key))
    assert cache.get("v1", "a") is not None  # a is now the most recently used
    cache.put("v1", "d", _reply(1000, "d"))
    assert cache.get("v1", "b") is None  # b was the least recently used
    assert [cache.get("v1", k) is not None for k in "acd"] == [True, True, True]
    assert cache.bytes <= cache.max_bytes and len(cache) == 3


def test_a_reply_larger_than_the_bound_is_not_kept_and_zero_turns_the_cache_off() -> None:
    small = ReplyCache(max_bytes=100)
    small.put("v1", "big", _reply(1000))
    assert small.get("v1", "big") is None and small.bytes == 0
    off = ReplyCache(max_bytes=0)
    off.put("v1", "k", _reply(1))
    assert off.get("v1", "k") is None


def test_another_bundle_version_empties_the_cache() -> None:
    cache = ReplyCache(max_bytes=1 << 20)
    cache.put("v1", "k", _reply(10))
    assert cache.get("v1", "k") is not None
    assert cache.get("v2", "k") is None
    assert len(cache) == 0 and cache.bytes == 0
    assert cache.get("v1", "k") is None  # going back does not bring old replies back


def test_the_key_covers_every_input_of_the_reply_and_skips_requests_with_their_own_user() -> None:
    base = RecommendationRequest(user_id=3, k=10)
    key = cache_key("recommendations", base, [], "brute")
    assert key == cache_key("recommendations", RecommendationRequest(user_id=3, k=10), [], "brute")
    variants = [
        cache_key("recommendations", RecommendationRequest(user_id=4, k=10), [], "brute"),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=11), [], "brute"),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, candidates=50), [], "brute"),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, diversity=0.5), [], "brute"),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, exclude_seen=False), [], "brute"),
        cache_key(
            "recommendations", RecommendationRequest(user_id=3, k=10, filters={"genres": ["Drama"]}), [], "brute"
        ),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, filters={"year_min": 1990}), [], "brute"),
        cache_key("recommendations", base, [7], "brute"),  # stored feedback
        cache_key("recommendations", base, [], "faiss"),
        cache_key("retrieval", RetrievalRequest(user_id=3, k=10), [], "brute"),
    ]
    assert key is not None and None not in variants
    assert len({key, *variants}) == len(variants) + 1
    assert cache_key("retrieval", RetrievalRequest(user_id=3, history=[1, 2]), [], "brute") is None
    assert cache_key("retrieval", RetrievalRequest(user_id=3, user_features={"age": 30}), [], "brute") is None
    assert cache_key("retrieval", RetrievalRequest(history=[1, 2]), [], "brute") is None


# --- through the service -----------------------------------------------------------------------------------


def _app(tiny_project: TinyProject, db: Path, **overrides: Any) -> TestClient:
    return TestClient(create_app(make_settings(tiny_project, db, **overrides)))


def test_a_repeat_is_served_from_the_cache_with_the_same_body_as_without_it(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    db = tmp_path / "serve.sqlite"
    with _app(tiny_project, db) as cached, _app(tiny_project, tmp_path / "plain.sqlite", reply_cache_bytes=0) as plain:
        for path, body in [(RETRIEVAL, {"user_id": 5, "k": 7}), (RECS, {"user_id": 5, "k": 4, "diversity": 0.3})]:
            hits, misses = _counts()
            first = cached.post(path, json=body)
            assert _counts() == (hits, misses + 1)
            second = cached.post(path, json=body)
            assert _counts() == (hits + 1, misses + 1)
            expected = plain.post(path, json=body)
            assert first.status_code == second.status_code == expected.status_code == 200
            assert first.content == second.content == expected.content
            assert first.headers["x-request-id"] != second.headers["x-request-id"]  # still one id per request
        assert "reply_cache_total" in cached.get("/metrics").text


def test_no_cache_asks_for_a_reply_computed_anew(tiny_project: TinyProject, tmp_path: Path) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        body = {"user_id": 8, "k": 6}
        first = client.post(RECS, json=body)
        hits, misses = _counts()
        again = client.post(RECS, json=body, headers={"Cache-Control": "no-cache"})
        assert _counts() == (hits, misses)  # the cache was not consulted
        assert again.content == first.content
        client.post(RECS, json=body)
        assert _counts() == (hits + 1, misses)


def test_requests_with_their_own_history_are_never_served_from_the_cache(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        hits, _ = _counts()
        for _ in range(3):
            assert client.post(RECS, json={"user_id": 5, "history": [1, 2, 3], "k": 4}).status_code == 200
            assert client.post(RECS, json={"history": [1, 2, 3], "k": 4}).status_code == 200
            assert client.post(RECS, json={"user_id": 5, "user_features": {"age": 30}, "k": 4}).status_code == 200
        assert _counts()[0] == hits


def test_feedback_posted_through_another_worker_changes_the_next_reply(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    """Two apps on one database stand in for two workers, each with its own cache."""
    db = tmp_path / "shared.sqlite"
    body = {"user_id": 9, "k": 5}
    with _app(tiny_project, db) as one, _app(tiny_project, db) as two:
        before = [item["item_id"] for item in one.post(RETRIEVAL, json=body).json()["items"]]
        assert one.post(RETRIEVAL, json=body).json()["items"][0]["item_id"] == before[0]  # now cached in one
        posted = two.post("/api/v1/feedback", json={"user_id": 9, "item_id": before[0], "rating": 5})
        assert posted.status_code == 201, posted.text
        after = [item["item_id"] for item in one.post(RETRIEVAL, json=body).json()["items"]]
        assert before[0] not in after and len(after) == 5


@pytest.mark.parametrize("path", [RETRIEVAL, RECS])
def test_a_reload_serves_no_reply_of_the_previous_bundle(path: str, tiny_project: TinyProject, tmp_path: Path) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        state = client.app.state.service
        first = client.post(path, json={"user_id": 6, "k": 3})
        assert len(state.replies) >= 1 and state.replies.version == state.recommender.version
        state.recommender.version = "another-version"  # what a swap to another bundle changes
        hits, misses = _counts()
        again = client.post(path, json={"user_id": 6, "k": 3})
        assert _counts() == (hits, misses + 1)
        assert again.json()["model_version"] == "another-version" != first.json()["model_version"]

"""The reply cache: repeats are served from memory, and never a reply the inputs no longer give."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from bundle_fixture import TinyProject, make_settings
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.reply_cache import HIT, MISS, Reply, ReplyCache, cache_key, feedback_digest
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
        cache.put(1, key, _reply(1000, key))
    assert cache.get(1, "a", b"") is not None  # a is now the most recently used
    cache.put(1, "d", _reply(1000, "d"))
    assert cache.get(1, "b", b"") is None  # b was the least recently used
    assert [cache.get(1, k, b"") is not None for k in "acd"] == [True, True, True]
    assert cache.bytes <= cache.max_bytes and len(cache) == 3


def test_a_reply_larger_than_the_bound_is_not_kept_and_zero_turns_the_cache_off() -> None:
    small = ReplyCache(max_bytes=100)
    small.put(1, "big", _reply(1000))
    assert small.get(1, "big", b"") is None and small.bytes == 0
    off = ReplyCache(max_bytes=0)
    off.put(1, "k", _reply(1))
    assert off.get(1, "k", b"") is None


def test_another_bundle_load_empties_the_cache_and_late_requests_of_the_old_one_change_nothing() -> None:
    cache = ReplyCache(max_bytes=1 << 20)
    cache.put(1, "k", _reply(10))
    assert cache.get(1, "k", b"") is not None
    assert cache.get(2, "k", b"") is None
    assert len(cache) == 0 and cache.bytes == 0
    cache.put(2, "k", _reply(10, "y"))
    cache.put(1, "old", _reply(10))  # a request that began before the swap finishes after it
    assert cache.get(1, "k", b"") is None  # and asks with the old load: no reply, no reset
    assert cache.load_id == 2 and len(cache) == 1 and cache.get(2, "k", b"") is not None


def test_a_reply_made_before_the_users_latest_feedback_is_not_served_but_replaced() -> None:
    cache = ReplyCache(max_bytes=1 << 20)
    before, after = feedback_digest([]), feedback_digest([7])
    cache.put(1, "u", Reply.of(b"old", Result([1], [0.5]), before))
    assert cache.get(1, "u", after) is None
    cache.put(1, "u", Reply.of(b"new", Result([2], [0.5]), after))
    assert len(cache) == 1 and cache.get(1, "u", after).body == b"new"
    assert feedback_digest([7, 8]) != feedback_digest([8, 7]) != feedback_digest([7])  # order matters too
    assert len(feedback_digest(list(range(500)))) == 16  # a fixed size, however long the history


def test_the_byte_bound_holds_for_the_memory_really_used() -> None:
    """Counted bytes against what the kept replies take (tracemalloc), for users with long feedback."""
    cache = ReplyCache(max_bytes=16 << 20)
    body = b"x" * 1200  # about a chain reply of 10 items
    feedback = list(range(500))  # the most feedback a user is served on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for user in range(2000):
            result = Result(list(range(user, user + 10)), [0.5] * 10)
            key = cache_key("recommendations", RecommendationRequest(user_id=user, k=10), "brute", user)
            cache.put(1, key, Reply.of(body + str(user).encode(), result, feedback_digest(feedback + [user])))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 2000 and used <= 1.25 * cache.bytes, (used, cache.bytes)


def test_the_key_covers_every_parameter_of_the_reply_and_skips_requests_with_their_own_user() -> None:
    base = RecommendationRequest(user_id=3, k=10)
    key = cache_key("recommendations", base, "brute", 3)
    assert key == cache_key("recommendations", RecommendationRequest(user_id=3, k=10), "brute", 3)
    variants = [
        cache_key("recommendations", RecommendationRequest(user_id=4, k=10), "brute", 4),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=11), "brute", 3),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, candidates=50), "brute", 3),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, diversity=0.5), "brute", 3),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, exclude_seen=False), "brute", 3),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, filters={"genres": ["Drama"]}), "brute", 3),
        cache_key("recommendations", RecommendationRequest(user_id=3, k=10, filters={"year_min": 1990}), "brute", 3),
        cache_key("recommendations", base, "faiss", 3),
        cache_key("retrieval", RetrievalRequest(user_id=3, k=10), "brute", 3),
    ]
    assert key is not None and None not in variants
    assert len({key, *variants}) == len(variants) + 1
    assert cache_key("retrieval", RetrievalRequest(user_id=3, history=[1, 2]), "brute", 3) is None
    assert cache_key("retrieval", RetrievalRequest(user_id=3, user_features={"age": 30}), "brute", 3) is None
    assert cache_key("retrieval", RetrievalRequest(history=[1, 2]), "brute", None) is None


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
def test_a_reload_serves_no_reply_of_the_previous_load_even_under_the_same_version(
    path: str, tiny_project: TinyProject, tmp_path: Path
) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        state = client.app.state.service
        first = client.post(path, json={"user_id": 6, "k": 3})
        assert len(state.replies) >= 1 and state.replies.load_id == state.recommender.load_id
        state.swap(state.load())  # the same bundle again: the same version label, another load
        hits, misses = _counts()
        again = client.post(path, json={"user_id": 6, "k": 3})
        assert _counts() == (hits, misses + 1)
        assert again.json()["model_version"] == first.json()["model_version"]
        assert state.replies.load_id == state.recommender.load_id


def test_made_up_user_ids_share_one_kept_reply(tiny_project: TinyProject, tmp_path: Path) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        replies = [client.post(RECS, json={"user_id": user, "k": 3}) for user in range(10**9, 10**9 + 20)]
        assert all(r.json()["is_fallback"] for r in replies) and len({r.content for r in replies}) == 1
        assert len(client.app.state.service.replies) == 1
        # what the shared reply stands for: computed anew, every such id gets those same bytes
        fresh = {
            client.post(RECS, json={"user_id": u, "k": 3}, headers={"Cache-Control": "no-cache"}).content
            for u in (10**9 + 100, 10**12, 7_000_000)
        }
        assert fresh == {replies[0].content}


@pytest.mark.parametrize(
    "headers",
    [{"Cache-Control": "no-cache"}, {"Cache-Control": "public, max-age=0"}, {"Pragma": "no-cache"}],
)
def test_a_client_may_ask_for_a_reply_computed_anew(
    headers: dict[str, str], tiny_project: TinyProject, tmp_path: Path
) -> None:
    with _app(tiny_project, tmp_path / "s.sqlite") as client:
        body = {"user_id": 8, "k": 6}
        first = client.post(RECS, json=body)
        hits, misses = _counts()
        again = client.post(RECS, json=body, headers=headers)
        assert _counts() == (hits, misses)  # the cache was not consulted
        assert again.content == first.content
        client.post(RECS, json=body, headers={"Cache-Control": "max-age=60"})
        assert _counts() == (hits + 1, misses)

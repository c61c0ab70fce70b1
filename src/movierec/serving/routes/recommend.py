"""``/api/v1/retrieval``, ``/api/v1/ranking`` and ``/api/v1/recommendations``."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Response

from movierec.serving.budget import Budget
from movierec.serving.deps import Reader, Serving, check_genres, check_user, record, user_query
from movierec.serving.fast_route import FastJsonRoute
from movierec.serving.reply_cache import Reply, cache_key, feedback_digest
from movierec.serving.responses import json_response, reply, reply_body
from movierec.serving.schemas import (
    RankingRequest,
    RankingResponse,
    RecommendationRequest,
    RecommendationResponse,
    RetrievalRequest,
    RetrievalResponse,
    error_responses,
)
from movierec.serving.service import Recommender, Result
from movierec.serving.state import ServiceState

router = APIRouter(
    prefix="/api/v1",
    tags=["recommendations"],
    responses=error_responses(400, 401, 403, 413, 503),
    route_class=FastJsonRoute,
)


def resolve_index(name: str, n_items: int, brute_max_items: int, recorded: str | None = None) -> str:
    """The index a request uses. ``auto`` is the bundle's recorded choice (the index build
    picks it from the catalogue's size by the rules ``movierec bench index`` measured, see
    ``models/index_rules.py``); for a bundle without one, exact scoring up to
    ``brute_max_items`` items and FAISS above."""
    if name != "auto":
        return name
    if recorded is not None:
        return recorded
    return "brute" if n_items <= brute_max_items else "faiss"


def _feedback(state: ServiceState, user_id: int | None) -> list[int]:
    """The user's feedback items since the bundle was trained (read per request: every worker agrees)."""
    return state.events.items_of(user_id) if user_id is not None else []


def _index(rec: Recommender, state: ServiceState, body: RetrievalRequest) -> str:
    return resolve_index(
        body.index or state.settings.default_index, len(rec.catalogue), state.settings.brute_max_items, rec.auto_index
    )


def _retrieve(rec: Recommender, body: RetrievalRequest, k: int, feedback: list[int], index: str) -> Result:
    check_user(body)
    filters = body.filters
    check_genres(rec, filters.genres if filters else None, ["body", "filters", "genres"])
    return rec.retrieve(
        user_query(body),
        feedback,
        k,
        body.exclude_seen,
        filters.genres if filters else None,
        filters.year_min if filters else None,
        filters.year_max if filters else None,
        index,
    )


def _cache_user(rec: Recommender, body: RetrievalRequest, feedback: list[int]) -> int | None:
    """Whom a reply depends on: the user, or None for an id the bundle knows nothing of and
    that has no feedback (every such id gets the same reply, so they share one kept reply,
    and a client cycling made-up ids cannot push real users' replies out)."""
    return None if not feedback and rec.anonymous(body.user_id) else body.user_id


def _body(rec: Recommender, result: Result) -> bytes:
    """The reply to a retrieval or a recommendations request."""
    return reply_body(
        rec.item_json.items(rec.row_of, result.item_ids, result.scores),
        model_version=rec.version,
        index=result.index or "",
        is_fallback=result.is_fallback,
        fallback_reason=result.fallback_reason,
    )


def _answer(
    endpoint: str,
    body: RetrievalRequest,
    served: Serving,
    compute: Callable[[Recommender, list[int], str, Budget], Result],
) -> Response:
    """A retrieval or recommendations reply: from the reply cache when it holds one for these
    inputs (see ``serving/reply_cache.py``), else ``compute(rec, feedback, index, budget)``."""
    started = time.perf_counter()
    state, rec, fresh = served
    budget = Budget(state.settings.request_budget_seconds, started)
    feedback = _feedback(state, body.user_id)
    budget.check("feedback")
    index = _index(rec, state, body)
    key = cache_key(endpoint, body, index, _cache_user(rec, body, feedback))
    digest = feedback_digest(feedback)
    kept = None if fresh else state.replies.get(rec.load_id, key, digest)
    result = kept.result if kept is not None else None
    if kept is None:
        result = compute(rec, feedback, index, budget)
        kept = Reply.of(_body(rec, result), result, digest)
        state.replies.put(rec.load_id, key, kept)
    request_id = record(state, endpoint, started, body.user_id, result, rec.version, logged=kept.logged)
    return json_response(kept.body, {"X-Request-ID": request_id})


@router.post("/retrieval", response_model=RetrievalResponse, summary="Candidates for a user")
async def retrieval(body: RetrievalRequest, served: Reader) -> Response:
    """The top ``k`` items from the two-tower model through the chosen index; a user with
    neither known events nor a history gets the popular list (``is_fallback``). A repeat of
    a known user's request is answered from the reply cache (``serving/reply_cache.py``)
    unless it asks for a fresh reply (``Cache-Control: no-cache``)."""

    def compute(rec: Recommender, feedback: list[int], index: str, budget: Budget) -> Result:
        result = _retrieve(rec, body, body.k, feedback, index)
        budget.check("retrieval")
        return result

    return _answer("retrieval", body, served, compute)


@router.post("/ranking", response_model=RankingResponse, summary="Score and order candidates")
async def ranking(body: RankingRequest, served: Reader) -> Response:
    """Candidates ordered by the ranker's interaction probability, with predicted ratings."""
    started = time.perf_counter()
    state, rec, _ = served
    check_user(body)
    unknown = [i for i in body.item_ids if int(i) not in rec.row_of]
    if unknown:
        raise HTTPException(
            422,
            detail=[{"loc": ["body", "item_ids"], "type": "value_error", "msg": f"unknown item ids: {unknown[:20]}"}],
        )
    if len(set(body.item_ids)) != len(body.item_ids):
        raise HTTPException(
            422, detail=[{"loc": ["body", "item_ids"], "type": "value_error", "msg": "item_ids contains duplicates"}]
        )
    feedback = _feedback(state, body.user_id)
    stage = time.perf_counter()
    result, ratings = rec.rank(user_query(body), feedback, list(body.item_ids))
    result.stages["ranking"] = time.perf_counter() - stage
    Budget(state.settings.request_budget_seconds, started).check("ranking")
    k = body.k or len(result.item_ids)
    result = Result(result.item_ids[:k], result.scores[:k], stages=result.stages)
    request_id = record(state, "ranking", started, body.user_id, result, rec.version)
    return reply(
        rec.item_json.items(rec.row_of, result.item_ids, result.scores, ratings[:k]),
        {"X-Request-ID": request_id},
        model_version=rec.version,
    )


@router.post("/recommendations", response_model=RecommendationResponse, summary="The whole chain in one call")
async def recommendations(body: RecommendationRequest, served: Reader) -> Response:
    """Candidates (retrieval), business filters, ranking, then an optional genre-diversity
    re-rank. A repeat of a known user's request is answered from the reply cache unless it
    asks for a fresh reply (``Cache-Control: no-cache``)."""
    return _answer(
        "recommendations", body, served, lambda rec, feedback, index, budget: _chain(rec, body, feedback, index, budget)
    )


def _chain(rec: Recommender, body: RecommendationRequest, feedback: list[int], index: str, budget: Budget) -> Result:
    """Retrieval, ranking and the optional diversity re-rank of one recommendations request."""
    candidates = _retrieve(rec, body, max(body.candidates, body.k), feedback, index)
    budget.check("retrieval")
    if not candidates.item_ids:
        return candidates
    stage = time.perf_counter()
    ranked, _ = rec.rank(user_query(body), feedback, candidates.item_ids, candidates.embedding)
    candidates.stages["ranking"] = time.perf_counter() - stage
    budget.check("ranking")
    ids, scores = ranked.item_ids, ranked.scores
    if body.diversity > 0:
        ids, scores = rec.diversify(ids, scores, body.k, body.diversity)
        budget.check("diversity")
    return Result(
        ids[: body.k],
        scores[: body.k],
        candidates.is_fallback,
        candidates.fallback_reason,
        candidates.index,
        candidates.stages,
    )

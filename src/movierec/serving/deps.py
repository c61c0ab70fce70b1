"""Dependencies the routes declare: the service state, the loaded recommender, the API key scopes."""

from __future__ import annotations

import random
import time
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, HTTPException, Request

from movierec.serving.metrics import FALLBACKS, LATENCY, REQUESTS, labelled
from movierec.serving.service import Recommender, Result, UserQuery
from movierec.serving.state import ServiceState


# The dependencies are ``async``: they only read a reference, and a sync dependency would
# cost every request a trip through the thread pool before the endpoint's own.
async def get_state(request: Request) -> ServiceState:
    """The application's shared state."""
    return request.app.state.service


async def get_recommender(state: Annotated[ServiceState, Depends(get_state)]) -> Recommender:
    """The current recommender, or 503 while no bundle is loaded."""
    current = state.recommender
    if current is None:
        raise HTTPException(503, detail=f"no bundle loaded: {state.not_ready_reason}")
    return current


def check_scope(request: Request, scope: str) -> None:
    """Let a request through only with a key holding ``scope``.

    Read and write need a key only when keys are required (see :mod:`movierec.serving.auth`);
    admin always does. No key or an unknown key: 401; a key without the scope: 403.
    """
    # the headers are read here, only when a key is needed: declared as Header()
    # parameters, FastAPI would parse them on every request, keys required or not
    state: ServiceState = request.app.state.service
    ring = state.keys
    if scope != "admin" and not ring.required:
        return
    if scope == "admin" and not ring.has_admin:
        raise HTTPException(403, detail="admin routes are disabled: set MOVIEREC_API_KEYS (KEY:admin)")
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if key is None and authorization and authorization[:7].lower() == "bearer ":
        key = authorization[7:].strip()
    scopes = ring.scopes_of(key)
    if scopes is None:
        raise HTTPException(
            401,
            detail="missing or unknown API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scope not in scopes:
        raise HTTPException(403, detail=f"this API key lacks the '{scope}' scope")


def require(scope: str) -> Any:
    """A dependency that lets a request through only with a key holding ``scope`` (see :func:`check_scope`)."""

    async def check(request: Request) -> None:
        check_scope(request, scope)

    return check


def wants_fresh(request: Request) -> bool:
    """Whether the client asks for a reply computed anew: ``Cache-Control: no-cache`` or
    ``max-age=0`` (what browsers send on a reload), or ``Pragma: no-cache``."""
    control = request.headers.get("cache-control")
    if control is not None:
        control = control.lower().replace(" ", "")
        if "no-cache" in control or "max-age=0" in control:
            return True
    pragma = request.headers.get("pragma")
    return pragma is not None and "no-cache" in pragma.lower()


class Serving(NamedTuple):
    """The state and the current recommender, for a request whose key was checked.

    ``fresh``: the request asks for a reply computed anew rather than one kept from an
    identical earlier request (:func:`wants_fresh`; see ``serving/reply_cache.py``).
    """

    state: ServiceState
    rec: Recommender
    fresh: bool = False


def serving(scope: str) -> Any:
    """One dependency doing the work of ``require(scope)``, ``State`` and ``Current`` at once.

    FastAPI solves each declared dependency separately, and three of them cost a model
    route about 30 microseconds a request, a tenth of its whole time once its reply is cached.
    """

    async def get(request: Request) -> Serving:
        check_scope(request, scope)
        state: ServiceState = request.app.state.service
        current = state.recommender
        if current is None:
            raise HTTPException(503, detail=f"no bundle loaded: {state.not_ready_reason}")
        return Serving(state, current, wants_fresh(request))

    return get


State = Annotated[ServiceState, Depends(get_state)]
Reader = Annotated[Serving, Depends(serving("read"))]
Current = Annotated[Recommender, Depends(get_recommender)]


def user_query(body: Any) -> UserQuery:
    """The service's user description from a request body."""
    feats = body.user_features
    return UserQuery(
        user_id=body.user_id,
        history=list(body.history),
        age=feats.age if feats else None,
        gender=feats.gender if feats else None,
        occupation=feats.occupation if feats else None,
    )


def check_user(body: Any) -> None:
    """A request must describe the user somehow."""
    if body.user_id is None and not body.history:
        raise HTTPException(
            422,
            detail=[
                {"loc": ["body", "user_id"], "type": "missing", "msg": "give a user_id, a history of item ids, or both"}
            ],
        )


def check_genres(rec: Recommender, genres: list[str] | None, loc: list[str]) -> None:
    """Unknown genre names are a 422 that names them."""
    unknown = [g for g in genres or [] if g not in rec.genres]
    if unknown:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": loc + [genres.index(g)],
                    "type": "value_error",
                    "msg": f"unknown genre '{g}'; known: {', '.join(rec.genres)}",
                }
                for g in unknown
            ],
        )


def request_id_now() -> str:
    """A unique request id that sorts by time: 16 hex digits of nanoseconds, 16 random.

    The request log's primary key: random ids (uuid4) land all over its B-tree, and the
    log writer spent about 10 % of a worker's CPU inserting them under load; ids that grow
    with time are appended at the end of the index instead.
    """
    # not a secret, so not ``secrets``: that reads the kernel's random source on every call
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def record(
    state: ServiceState,
    endpoint: str,
    started: float,
    user_id: int | None,
    result: Result | None,
    version: str | None,
    status: int = 200,
    logged: tuple[str, str] | None = None,
) -> str:
    """Metrics and the request log for one served request; returns the request id.

    ``result.stages`` are observed as stage latencies (a reply from the reply cache has none);
    ``logged`` is the log row's encoded item and score columns when the caller has them.
    """
    request_id = request_id_now()
    elapsed = time.perf_counter() - started
    labelled(REQUESTS, endpoint, str(status)).inc()
    labelled(LATENCY, endpoint, "total").observe(elapsed)
    if result is not None:
        for stage, seconds in result.stages.items():
            labelled(LATENCY, endpoint, stage).observe(seconds)
        if result.is_fallback:
            labelled(FALLBACKS, result.fallback_reason or "unknown").inc()
        state.log.log(
            request_id,
            user_id,
            endpoint,
            version,
            result.item_ids,
            result.scores,
            elapsed * 1000,
            result.is_fallback,
            result.fallback_reason,
            logged,
        )
    state.active.touch(user_id)
    return request_id

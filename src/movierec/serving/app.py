"""The FastAPI application: lifespan loads the bundle; middleware bounds bodies and counts errors."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from movierec import __version__
from movierec.serving.auth import KeyRing
from movierec.serving.budget import OverBudget
from movierec.serving.database import StoreUnavailable
from movierec.serving.metrics import REQUESTS
from movierec.serving.quality import QualityDigest
from movierec.serving.reply_cache import ReplyCache
from movierec.serving.routes import admin, catalogue, feedback, health, recommend
from movierec.serving.settings import Settings
from movierec.serving.state import ServiceState
from movierec.serving.storage import open_storage
from movierec.serving.store import BundlePointer, EventStore, RateLimited, RequestLog

log = logging.getLogger("movierec.serving")


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = any(
            name == b"content-length" and value.isdigit() and int(value) > self.limit
            for name, value in scope.get("headers", [])
        )
        received = 0

        async def limited() -> dict:
            # Raised where the route reads the body, so FastAPI answers 413 (an HTTPException)
            # and the error is counted under the route's name like any other.
            nonlocal received
            if declared:
                raise _TooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:  # read outside a route (not expected): still a 413, never a 500
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over the {self.limit}-byte limit"}, status_code=413)
        await response(scope, receive, send)


class CountErrors:
    """Counts every 4xx/5xx response by route name (pure ASGI: no per-request task or copy),
    and every unhandled exception as a 500: Starlette's outer error middleware answers those,
    outside this one, so without this they would never reach the metrics."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        started = False

        def count(status: int) -> None:
            route = scope.get("route")
            # unmatched paths share one label: a scanner must not create a series per URL
            REQUESTS.labels(endpoint=getattr(route, "name", None) or "unmatched", status=str(status)).inc()

        async def watch(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400:
                    count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not started:  # the outer error middleware will answer 500
                count(500)
            raise


class _TooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, detail=f"request body over the {limit}-byte limit")


ECHO_DEPTH = 6  # levels of the input a 422 echoes back (from the error itself)
ECHO_ITEMS = 20  # entries of a list or mapping echoed back
ECHO_TEXT = 200  # characters of a string echoed back
MAX_ERRORS = 50  # errors listed in one 422


def _printable(value: Any, depth: int = 0) -> Any:
    """A bounded echo of ``value`` for an error reply: at most ``ECHO_DEPTH`` levels deep
    (deeper input is replaced by a note), ``ECHO_ITEMS`` entries and ``ECHO_TEXT`` characters
    each; non-finite floats as strings and other objects as text, so the reply is valid JSON
    and its size and the work to build it are bounded whatever the input's nesting (a field
    nested a thousand levels deep once crashed this with RecursionError)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= ECHO_TEXT else value[:ECHO_TEXT] + "..."
    if isinstance(value, (dict, list, tuple)):
        if depth >= ECHO_DEPTH:
            return "(nested deeper; not shown)"
        if isinstance(value, dict):
            return {str(k)[:ECHO_TEXT]: _printable(v, depth + 1) for k, v in list(value.items())[:ECHO_ITEMS]}
        return [_printable(v, depth + 1) for v in list(value[:ECHO_ITEMS])]
    return _printable(str(value), depth)


class _EscapedJSON(JSONResponse):
    """ASCII-escaped JSON: renders strings that are not valid UTF-8 (lone surrogates) too."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, robust to inputs it echoes back (``NaN``, ``Infinity``, lone surrogates,
    deep nesting): each error's input is echoed within bounds, at most ``MAX_ERRORS`` errors."""
    errors = exc.errors()
    detail = [_printable(dict(error)) for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append({"type": "truncated", "loc": [], "msg": f"{len(errors) - MAX_ERRORS} more errors not shown"})
    return _EscapedJSON(status_code=422, content={"detail": detail})


async def _store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    """The database cannot serve the request now: 503 with the reason, never a 500 or a hang."""
    return JSONResponse({"detail": exc.reason}, status_code=503, headers={"Retry-After": "1"})


async def _rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
    """Too much feedback from one user: 429 with the wait in Retry-After."""
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})


async def _over_budget(request: Request, exc: OverBudget) -> JSONResponse:
    """A request over its time budget: 503 naming the stage."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None, load: bool = True) -> FastAPI:
    """Build the application.

    Args:
        settings: service settings (default: from the environment).
        load: load the bundle at start-up; a failure leaves the service up but not ready
            (``/ready`` says why), never half-loaded.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = open_storage(settings)  # SQLite files (default) or PostgreSQL (MOVIEREC_DATABASE_URL)
        state = ServiceState(
            settings,
            EventStore(storage, settings),
            RequestLog(storage, settings=settings),
            pointer=BundlePointer(storage),
            storage=storage,
            keys=KeyRing.parse(settings.api_keys, settings.api_key, settings.auth, settings.host),
            replies=ReplyCache(settings.reply_cache_bytes),
        )
        app.state.service = state
        if load:
            try:
                candidate = state.load()
                state.smoke_test(candidate)  # start-up checks what a reload checks
                state.swap(candidate)
                state.configured_version = candidate.version
            except Exception as exc:  # reported by /ready, the service stays up
                state.not_ready_reason = f"{type(exc).__name__}: {exc}"
                log.error("bundle not loaded: %s", state.not_ready_reason)
            state.sync_with_pointer()  # a worker started after a reload serves the reloaded bundle
        state.follow_reloads(settings.reload_poll_seconds)
        quality = QualityDigest.for_service(
            storage, lambda: state.recommender.row_of if state.recommender else None, settings
        )
        quality.start()  # coverage and interacted share, off the request path
        yield
        quality.stop()
        state.stop()
        state.log.close()
        storage.close()

    app = FastAPI(
        title="movierec",
        version=__version__,
        lifespan=lifespan,
        description="Two-tower retrieval and pointwise ranking over MovieLens, with cold start, "
        "filters, feedback and hot reload.",
    )
    for module in (recommend, catalogue, feedback, admin, health):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(RateLimited, _rate_limited)  # type: ignore[arg-type]
    app.add_exception_handler(OverBudget, _over_budget)  # type: ignore[arg-type]

    # Added first, so it runs inside CountErrors: its 413s are counted like any other error, and
    # it hands the route a receive that raises the 413 itself (as an HTTP error the app renders)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(CountErrors)

    return app

"""The FastAPI application: lifespan loads the bundle; middleware bounds bodies and counts errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from movierec import __version__
from movierec.serving.metrics import REQUESTS
from movierec.serving.routes import admin, catalogue, feedback, health, recommend
from movierec.serving.settings import Settings
from movierec.serving.state import ServiceState
from movierec.serving.store import EventStore, RequestLog

log = logging.getLogger("movierec.serving")


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._refuse(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        REQUESTS.labels(endpoint=scope.get("path", ""), status="413").inc()
        response = JSONResponse({"detail": f"request body over the {self.limit}-byte limit"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


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
        state = ServiceState(settings, EventStore(settings.database_path),
                             RequestLog(settings.database_path, settings.log_queue_size))
        app.state.service = state
        if load:
            try:
                state.swap(state.load())
            except Exception as exc:  # noqa: BLE001 - reported by /ready, the service stays up
                state.not_ready_reason = f"{type(exc).__name__}: {exc}"
                log.error("bundle not loaded: %s", state.not_ready_reason)
        yield
        state.log.close()
        state.events.close()

    app = FastAPI(title="movierec", version=__version__, lifespan=lifespan,
                  description="Two-tower retrieval and pointwise ranking over MovieLens, with cold start, "
                              "filters, feedback and hot reload.")
    for module in (recommend, catalogue, feedback, admin, health):
        app.include_router(module.router)

    @app.middleware("http")
    async def count_errors(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        if response.status_code >= 400:
            route = request.scope.get("route")
            REQUESTS.labels(endpoint=getattr(route, "name", request.url.path), status=str(response.status_code)).inc()
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app

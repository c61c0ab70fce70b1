"""``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from movierec.serving.deps import State
from movierec.serving.metrics import CONTENT_TYPE, render
from movierec.serving.schemas import ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Alive")
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get(
    "/ready", response_model=ReadyResponse, summary="A bundle is loaded", responses={503: {"model": ReadyResponse}}
)
def ready(state: State) -> Response:
    """200 with the bundle's version, load time and sizes; 503 with the reason while not ready:
    no bundle loaded, or the service database cannot take writes (removed or replaced, disk
    full or under ``MOVIEREC_MIN_FREE_DISK_BYTES``, read-only)."""
    rec = state.recommender
    reason = state.unready_reason()
    if rec is None or reason is not None:
        body = ReadyResponse(ready=False, reason=reason, model_version=rec.version if rec else None)
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(
        ReadyResponse(
            ready=True,
            model_version=rec.version,
            loaded_at=rec.loaded_at,
            load_seconds=round(rec.load_seconds, 3),
            items=len(rec.catalogue),
            users=rec.n_users,
        ).model_dump()
    )


@router.get("/metrics", summary="Prometheus metrics")
def metrics() -> Response:
    """The Prometheus exposition format."""
    return Response(render(), media_type=CONTENT_TYPE)


@router.get("/api/v1/ping", summary="Trivial endpoint (the benchmark's floor)")
async def ping() -> dict[str, bool]:
    """Does nothing: its latency is the framework's own floor."""
    return {"pong": True}

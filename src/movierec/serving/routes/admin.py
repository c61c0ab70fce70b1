"""``/admin/reload``: load, validate and atomically swap in a new bundle."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from movierec.serving.deps import State, require
from movierec.serving.schemas import ReloadRequest, ReloadResponse, error_responses

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require("admin"))],
    responses=error_responses(400, 401, 403, 413),
)


@router.post("/reload", response_model=ReloadResponse, summary="Swap in a new bundle")
def reload(state: State, body: ReloadRequest | None = None) -> ReloadResponse:
    """Loads the bundle at ``path``, or the registered version with ``alias`` (e.g.
    ``champion``) or number ``version`` (downloaded from the MLflow registry first), or by
    default the configured folder or ``MOVIEREC_MODEL_URI``; checks its manifest and runs
    smoke queries on every index and the ranker; only then swaps it in. On any failure the
    current bundle keeps serving and the reply says why. With several workers (or replicas
    sharing a PostgreSQL database), the one that answers records the bundle in the service
    database (a registry address pinned to its version, or the folder's path) and the others
    fetch and load it within ``MOVIEREC_RELOAD_POLL_SECONDS`` (each keeps its old bundle if the
    load fails)."""
    current = state.recommender.version if state.recommender else None
    body = body or ReloadRequest()
    fetched = None
    with state.reload_lock:
        try:
            folder = Path(body.path) if body.path is not None else None  # a folder, never a registry address
            path, fetched = state.source(folder, body.alias, body.version)
            candidate = state.load(path)
            state.smoke_test(candidate)
        except Exception as exc:  # every failure keeps the old bundle and is reported
            return ReloadResponse(reloaded=False, model_version=current, reason=f"{type(exc).__name__}: {exc}")
        previous = state.swap(candidate)
        if state.pointer is not None:  # the other workers (and replicas) follow within reload_poll_seconds
            state.pointer.set(state.pointed_source(path, fetched), candidate.version, state.configured_version)
    return ReloadResponse(
        reloaded=True,
        model_version=candidate.version,
        previous_version=previous,
        load_seconds=round(candidate.load_seconds, 3),
        model_uri=fetched.uri if fetched else None,
        registry_version=fetched.version if fetched else None,
    )

"""``/api/v1/items/{item_id}``, ``/api/v1/items/{item_id}/similar`` and ``/api/v1/popular``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from movierec.serving.deps import Current, State, check_genres, record, require
from movierec.serving.responses import reply
from movierec.serving.schemas import MAX_ID, ItemListResponse, ItemResponse, error_responses

router = APIRouter(
    prefix="/api/v1",
    tags=["catalogue"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(401, 403, 404, 503),
)
ItemPath = Annotated[int, Path(ge=0, le=MAX_ID, description="a catalogue item id")]


def _known(rec: Current, item_id: int) -> None:
    if int(item_id) not in rec.row_of:
        raise HTTPException(404, detail=f"item {item_id} is not in the catalogue of bundle {rec.version}")


@router.get("/items/{item_id}", response_model=ItemResponse, summary="A catalogue item")
async def item(item_id: ItemPath, rec: Current) -> ItemResponse:
    """Title, year, genres and interaction statistics of one item."""
    _known(rec, item_id)
    return ItemResponse(**rec.item(item_id))


@router.get("/items/{item_id}/similar", response_model=ItemListResponse, summary="Items like this one")
async def similar(
    item_id: ItemPath, rec: Current, state: State, k: Annotated[int, Query(ge=1, le=1000)] = 10
) -> Response:
    """Nearest items in the candidate tower's embedding space."""
    started = time.perf_counter()
    _known(rec, item_id)
    result = rec.similar(item_id, k)
    request_id = record(state, "similar", started, None, result, rec.version)
    return reply(
        rec.item_json.items(rec.row_of, result.item_ids, result.scores),
        {"X-Request-ID": request_id},
        model_version=rec.version,
    )


@router.get("/popular", response_model=ItemListResponse, summary="Popular items")
async def popular(
    rec: Current,
    state: State,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    genre: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The most interacted-with items of the recent window (optionally of one genre)."""
    started = time.perf_counter()
    genres = [genre] if genre else None
    check_genres(rec, genres, ["query", "genre"])
    result = rec.popular(k, genres)
    request_id = record(state, "popular", started, None, result, rec.version)
    return reply(
        rec.item_json.items(rec.row_of, result.item_ids, result.scores),
        {"X-Request-ID": request_id},
        model_version=rec.version,
    )

"""``/api/v1/feedback``: interactions recorded for the next request and the next retraining."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException

from movierec.serving.deps import Current, State, record, require
from movierec.serving.metrics import FEEDBACK_EVENTS
from movierec.serving.schemas import FeedbackRequest, FeedbackResponse, error_responses

router = APIRouter(
    prefix="/api/v1",
    tags=["feedback"],
    dependencies=[Depends(require("write"))],
    responses=error_responses(400, 401, 403, 413, 429, 503),
)


@router.post("/feedback", response_model=FeedbackResponse, status_code=201, summary="Record an interaction")
def feedback(body: FeedbackRequest, rec: Current, state: State) -> FeedbackResponse:
    """Stores the event; the user's next request counts the item as seen and in the history."""
    started = time.perf_counter()
    if int(body.item_id) not in rec.row_of:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", "item_id"],
                    "type": "value_error",
                    "msg": f"item {body.item_id} is not in the catalogue",
                }
            ],
        )
    if body.event == "rating" and body.rating is None:
        raise HTTPException(
            422,
            detail=[{"loc": ["body", "rating"], "type": "missing", "msg": "a rating event needs a rating (0.5 to 5)"}],
        )
    stamp = body.timestamp if body.timestamp is not None else int(time.time())
    event_id = state.events.add(body.user_id, body.item_id, body.rating, body.event, stamp)
    FEEDBACK_EVENTS.labels(event=body.event).inc()
    record(state, "feedback", started, body.user_id, None, rec.version, status=201)
    return FeedbackResponse(id=event_id, user_id=body.user_id, item_id=body.item_id, event=body.event)

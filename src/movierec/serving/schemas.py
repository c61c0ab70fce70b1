"""Request and response models of the REST API (pydantic), named ``...Request`` / ``...Response``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Request integers are strict: JSON true, "1" and 1.0 are not ids or counts (lax parsing once
# took `user_id: true` for user 1). Response models keep plain int.
StrictInt = Annotated[int, Field(strict=True)]
ItemId = StrictInt
MAX_ID = 2**62


def _unicode(value: str) -> str:
    """JSON can escape lone surrogates; they are not text, and TensorFlow cannot encode them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("not valid Unicode text") from exc
    return value


Text = Annotated[str, AfterValidator(_unicode)]


class UserFeatures(BaseModel):
    """Optional demographics for users the bundle has never seen."""

    model_config = ConfigDict(extra="forbid")
    age: float | None = Field(None, ge=0, le=130)
    gender: Text | None = Field(None, max_length=32)
    occupation: Text | None = Field(None, max_length=64)


class Filters(BaseModel):
    """Business filters applied to candidates; results are backfilled to keep ``k``."""

    model_config = ConfigDict(extra="forbid")
    genres: list[Text] | None = Field(None, max_length=50, description="keep items with any of these genres")
    year_min: StrictInt | None = Field(None, ge=1800, le=2200)
    year_max: StrictInt | None = Field(None, ge=1800, le=2200)

    @model_validator(mode="after")
    def _years_ordered(self) -> Filters:
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError("year_min must not exceed year_max")
        return self


class UserDescription(BaseModel):
    """A user id, a history of item ids, or both."""

    model_config = ConfigDict(extra="forbid")
    user_id: StrictInt | None = Field(None, ge=0, le=MAX_ID)
    history: list[ItemId] = Field(
        default_factory=list, max_length=1000, description="item ids the user interacted with, oldest first"
    )
    user_features: UserFeatures | None = None


class RetrievalRequest(UserDescription):
    """Candidates for a user."""

    k: StrictInt = Field(100, ge=1, le=1000)
    exclude_seen: bool = True
    filters: Filters | None = None
    index: Literal["scann", "faiss", "brute"] | None = None


class ScoredItem(BaseModel):
    """An item with its score, and its metadata when known."""

    item_id: int
    score: float
    title: str | None = None
    year: int | None = None
    genres: list[str] = Field(default_factory=list)
    rating: float | None = None


class RetrievalResponse(BaseModel):
    """Candidates best first, with how they were produced."""

    items: list[ScoredItem]
    model_version: str
    index: str
    is_fallback: bool
    fallback_reason: str | None = None


class RankingRequest(UserDescription):
    """Candidates to score and order for a user."""

    item_ids: list[ItemId] = Field(..., min_length=1, max_length=1000)
    k: StrictInt | None = Field(None, ge=1, le=1000)


class RankingResponse(BaseModel):
    """Candidates ordered by the ranker's interaction probability."""

    items: list[ScoredItem]
    model_version: str


class RecommendationRequest(RetrievalRequest):
    """Retrieval, filtering, ranking and an optional diversity re-rank in one call."""

    k: StrictInt = Field(10, ge=1, le=1000)
    candidates: StrictInt = Field(100, ge=1, le=1000)
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="0: ranker order; up to 1: favour genre variety")


class RecommendationResponse(RetrievalResponse):
    """The final list."""


class ItemResponse(BaseModel):
    """A catalogue item."""

    item_id: int
    title: str
    year: int | None
    genres: list[str]
    interactions: int
    recent_interactions: int
    mean_rating: float | None


class ItemListResponse(BaseModel):
    """A list of items (similar or popular)."""

    items: list[ScoredItem]
    model_version: str


class FeedbackRequest(BaseModel):
    """An interaction to record."""

    model_config = ConfigDict(extra="forbid")
    user_id: StrictInt = Field(..., ge=0, le=MAX_ID)
    item_id: StrictInt = Field(..., ge=0, le=MAX_ID)
    rating: float | None = Field(None, ge=0.5, le=5.0)
    event: Literal["rating", "view", "click", "watch"] = "rating"
    timestamp: StrictInt | None = Field(None, ge=0, le=2**40, description="Unix seconds; default: now")


class FeedbackResponse(BaseModel):
    """The stored event."""

    id: int
    user_id: int
    item_id: int
    event: str


class ReloadRequest(BaseModel):
    """Where to load the next bundle from: a folder, or a registered version by alias or
    number (default: the configured folder or registry address)."""

    model_config = ConfigDict(extra="forbid")
    path: Text | None = Field(None, max_length=4096)
    alias: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="e.g. champion")
    version: StrictInt | None = Field(None, ge=1, description="a registered version number")

    @model_validator(mode="after")
    def _one_source(self) -> ReloadRequest:
        given = [k for k in ("path", "alias", "version") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of path, alias or version, not {' and '.join(given)}")
        return self


class ReloadResponse(BaseModel):
    """Whether the swap happened, and why not."""

    reloaded: bool
    model_version: str | None
    previous_version: str | None = None
    reason: str | None = None
    load_seconds: float | None = None
    model_uri: str | None = Field(None, description="the registry address, when loaded from the registry")
    registry_version: str | None = None


class ReadyResponse(BaseModel):
    """The loaded bundle."""

    ready: bool
    model_version: str | None = None
    loaded_at: float | None = None
    load_seconds: float | None = None
    items: int | None = None
    users: int | None = None
    reason: str | None = None


class ErrorResponse(BaseModel):
    """Every error but a 422 (whose ``detail`` lists the fields at fault)."""

    detail: str


_ERROR_TEXT = {
    400: "the body is not valid JSON",
    401: "an API key is required and none or an unknown one was sent (Authorization: Bearer KEY)",
    403: "the API key lacks this route's scope, or admin routes are disabled",
    404: "no such item",
    413: "the body is over MOVIEREC_MAX_BODY_BYTES",
    429: "this user posted more feedback than MOVIEREC_FEEDBACK_RATE_LIMIT allows; see Retry-After",
    503: "no bundle is loaded yet (GET /ready says why), the database is busy or unavailable, "
    "or the request ran over its time budget",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI ``responses`` entries of the error replies a router may give."""
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}

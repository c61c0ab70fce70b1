"""Response bodies written straight to JSON text.

A list of 100 scored items built as pydantic models, validated against the response model
and encoded cost more than the model work of the request (measured with wrk: the retrieval
endpoint's replies of 100 items ran at a third of the chain's speed per item of model
work). Each catalogue item's metadata is therefore encoded once per bundle
(:class:`ItemJSON`), and a reply joins those fragments with the per-request numbers. The
routes keep their ``response_model`` for the OpenAPI schema; the text has exactly that
shape (tests compare it with the models' own encoding).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import Response


def number(value: float) -> str:
    """A float as JSON (``null`` for NaN and infinities, which JSON cannot hold)."""
    value = float(value)
    return repr(value) if math.isfinite(value) else "null"


class ItemJSON:
    """Every catalogue item's ``"title":…,"year":…,"genres":[…]`` fragment, by catalogue row."""

    def __init__(self, items: Sequence[dict[str, Any]]):
        self.fragments = [
            json.dumps({"title": m["title"], "year": m["year"], "genres": list(m["genres"])}, ensure_ascii=True)[1:-1]
            for m in items
        ]

    def items(
        self, row_of: dict[int, int], item_ids: Sequence[int], scores: Sequence[float], ratings: Any = None
    ) -> str:
        """The ``items`` array of a reply: each item's id, score, metadata and rating (or null)."""
        fragments = self.fragments
        score_text = numbers(scores)
        rating_text = ["null"] * len(score_text) if ratings is None else numbers(ratings[: len(score_text)])
        parts = [
            f'{{"item_id":{item},"score":{score},{fragments[row_of[item]]},"rating":{rating}}}'
            for item, score, rating in zip(map(int, item_ids), score_text, rating_text)
        ]
        return "[" + ",".join(parts) + "]"


def numbers(values: Any) -> list[str]:
    """Floats as JSON, all at once (``null`` for NaN and infinities)."""
    array = np.asarray(values, dtype=np.float64)
    if np.isfinite(array).all():
        return list(map(repr, array.tolist()))
    return [number(v) for v in array.tolist()]


def reply_body(items: str, **fields: Any) -> bytes:
    """The JSON text ``{"items": …, **fields}`` from the pre-encoded ``items`` array."""
    rest = "".join(f',"{name}":{json.dumps(value, ensure_ascii=True)}' for name, value in fields.items())
    return ('{"items":' + items + rest + "}").encode()


def reply(items: str, headers: dict[str, str] | None = None, **fields: Any) -> Response:
    """A JSON response ``{"items": …, **fields}`` from the pre-encoded ``items`` array."""
    return json_response(reply_body(items, **fields), headers)


def json_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A response with a finished JSON body."""
    return Response(content=body, media_type="application/json", headers=headers)

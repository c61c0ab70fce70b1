"""The direct path for well-formed JSON answers exactly as FastAPI's standard handler does."""

from __future__ import annotations

import json
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from movierec.serving.fast_route import FastJsonRoute, _fast_parts


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    genres: list[str] | None = None
    year_min: int | None = Field(None, ge=1800)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: int | None = None
    k: int = Field(10, ge=1, le=100)
    history: list[int] = []
    filters: Filters | None = None


async def who(request: Request) -> str:
    key = request.headers.get("x-api-key")
    if key == "bad":
        raise HTTPException(401, detail="missing or unknown API key")
    return key or "anyone"


Who = Annotated[str, Depends(who)]


def _app() -> FastAPI:
    app = FastAPI()
    for prefix, route_class in (("/standard", fastapi.routing.APIRoute), ("/fast", FastJsonRoute)):
        router = APIRouter(prefix=prefix, route_class=route_class)

        @router.post("/echo")
        async def echo(body: Body, caller: Who) -> Response:
            return Response(json.dumps({"body": body.model_dump(), "caller": caller}), media_type="application/json")

        @router.post("/query")  # a query parameter: not a route the direct path serves
        async def query(body: Body, caller: Who, page: int = 1) -> dict[str, Any]:
            return {"page": page, "k": body.k}

        app.include_router(router)
    return app


JSON = {"content-type": "application/json"}
CASES: list[tuple[bytes, dict[str, str]]] = [
    (b'{"user_id": 1, "k": 5}', JSON),
    (b'{"user_id": 1, "k": 5, "filters": {"genres": ["Drama"], "year_min": 1990}}', JSON),
    (b'{"user_id": 1}', {**JSON, "x-api-key": "abc"}),
    (b'{"user_id": 1}', {**JSON, "x-api-key": "bad"}),  # the dependency refuses: 401
    (b'{"user_id": "x"}', {**JSON, "x-api-key": "bad"}),  # refused before the body is judged
    (b'{"user_id": "1"}', JSON),  # strict: a string is not an int
    (b'{"user_id": true}', JSON),
    (b'{"k": 0}', JSON),
    (b'{"k": 5, "extra": 1}', JSON),
    (b'{"filters": {"year_min": 10}}', JSON),
    (b'{"user_id": 1', JSON),  # broken JSON
    (b'{"user_id": NaN}', JSON),
    (b"[1, 2]", JSON),
    (b"null", JSON),
    (b'"text"', JSON),
    (b"", JSON),
    (b'{"user_id": 1}', {"content-type": "application/json; charset=utf-8"}),
    (b'{"user_id": 1}', {"content-type": "application/vnd.api+json"}),
    (b'{"user_id": 1}', {"content-type": "text/plain"}),
    (b'{"user_id": 1}', {}),
    (b"\xff\xfe", JSON),
    (b'{"history": ' + b"[" * 3000 + b"1" + b"]" * 3000 + b"}", JSON),
]


@pytest.mark.parametrize(("content", "headers"), CASES)
@pytest.mark.parametrize("path", ["/echo", "/query"])
def test_every_request_gets_the_standard_handlers_answer(content: bytes, headers: dict[str, str], path: str) -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    standard = client.post(f"/standard{path}", content=content, headers=headers)
    fast = client.post(f"/fast{path}", content=content, headers=headers)
    assert (fast.status_code, fast.content) == (standard.status_code, standard.content)


def test_the_direct_path_is_taken_only_for_well_formed_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    client = TestClient(_app())
    assert client.post("/fast/echo", content=b'{"user_id": 1}', headers=JSON).status_code == 200
    assert solved == []  # no generic dependency solving
    assert client.post("/fast/echo", content=b'{"user_id": "1"}', headers=JSON).status_code == 422
    assert client.post("/fast/query", content=b'{"user_id": 1}', headers=JSON).status_code == 200
    assert solved == ["/fast/echo", "/fast/query"]  # the 422 and the other signature: the standard handler


def test_dependency_overrides_are_honoured() -> None:
    app = _app()
    app.dependency_overrides[who] = lambda: "override"
    r = TestClient(app).post("/fast/echo", content=b'{"user_id": 1}', headers=JSON)
    assert r.json()["caller"] == "override"


def test_the_model_routes_take_the_direct_path(client: TestClient) -> None:
    routes = {route.path: route for route in client.app.routes if isinstance(route, fastapi.routing.APIRoute)}
    for path in ("/api/v1/retrieval", "/api/v1/ranking", "/api/v1/recommendations"):
        assert isinstance(routes[path], FastJsonRoute) and _fast_parts(routes[path]) is not None, path

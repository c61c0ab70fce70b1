"""A route class that answers well-formed JSON requests without FastAPI's general machinery.

For every request, FastAPI's handler parses the content type through ``email.message``,
builds a response for dependencies to write to, parses the query string, and solves
the dependency tree twice over (the route's, then each dependency's own), all of it
generic. For the model routes that is about half of what a request costs once its reply is
cached, while the route needs only two things: the JSON body validated into its model,
and the one dependency that checks the key and returns the served model.

:class:`FastJsonRoute` does exactly that for a request that is plainly well-formed:

- ``Content-Type: application/json``, a non-empty body that ``json.loads`` reads (what
  Starlette's ``Request.json`` uses), and a body that FastAPI's own field for it
  (``route.body_field``) validates;
- then the route's single dependency, called as FastAPI would call it, and the endpoint.

Anything else (another content type, bad JSON, a body that fails validation, dependency
overrides set by tests) goes to FastAPI's standard handler, which reads the same body and
answers exactly as before, the 422 and its wording included. A route whose signature is
not ``(body, dependency taking only the request)`` always uses the standard handler. The
OpenAPI schema is FastAPI's, since only the handler changes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

JSON = "application/json"


def _fast_parts(route: APIRoute) -> tuple[str, str, Callable[[Request], Any]] | None:
    """``(body parameter, dependency parameter, dependency)`` of a route the fast path can
    serve, or None: one JSON body, one async dependency of the request alone, nothing else."""
    dependant = route.dependant
    if (
        route.body_field is None
        or len(dependant.body_params) != 1
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.request_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or len(dependant.dependencies) != 1
        or not inspect.iscoroutinefunction(dependant.call)
    ):
        return None
    dependency = dependant.dependencies[0]
    if (
        dependency.call is None
        or not inspect.iscoroutinefunction(dependency.call)
        or dependency.request_param_name is None
        or dependency.dependencies
        or dependency.body_params
        or dependency.path_params
        or dependency.query_params
        or dependency.header_params
        or dependency.cookie_params
        or dependency.name is None
    ):
        return None
    body_name = dependant.body_params[0].name
    return body_name, dependency.name, dependency.call


class FastJsonRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` with a direct path for well-formed JSON requests
    (see the module's docstring); behaves exactly like its base for everything else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The standard handler, wrapped by the direct path when the route's signature allows it."""
        standard = super().get_route_handler()
        parts = _fast_parts(self)
        if parts is None:
            return standard
        body_name, dependency_name, dependency = parts
        body_field = self.body_field
        endpoint = self.dependant.call
        overrides_provider = self.dependency_overrides_provider
        assert body_field is not None and endpoint is not None

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type") != JSON or getattr(overrides_provider, "dependency_overrides", None):
                return await standard(request)
            raw = await request.body()  # kept on the request: the standard handler reads it again
            try:
                value = json.loads(raw) if raw else None
                body, errors = body_field.validate(value, {}, loc=("body",)) if value is not None else (None, [1])
            except (ValueError, RecursionError):  # bad JSON: the standard handler words the 422
                return await standard(request)
            if errors:
                return await standard(request)
            served = await dependency(request)
            return await endpoint(**{body_name: body, dependency_name: served})

        return handler

"""Property-based fuzzing of every route from the app's own OpenAPI schema: no input may cause a 5xx.

Schemathesis generates valid and invalid requests (bodies, query and path parameters,
headers) for each operation — its explicit-examples, coverage (boundary values) and
fuzzing phases — and sends them in-process through its ASGI transport to an app serving
the tiny bundle. The only check is ``not_a_server_error``: a 4xx for a bad request is
fine, a 5xx is a bug.

``/admin/reload`` is fuzzed too, but with a key the generator cannot guess: every call
exercises the key check (which must answer 401, never crash) without loading bundles.

The schema is the app's ``/openapi.json`` document (``app.openapi()``, which needs no
bundle), read when the module is collected, so each operation is its own test item; the
requests go to the app of the ``fuzz_app`` fixture. (``schemathesis.pytest.from_fixture``
would defer loading to a fixture, but schemathesis 4.32 sets ``request.node._nodeid``,
which pytest 9 no longer has.)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from bundle_fixture import TinyProject, make_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from movierec.serving.app import create_app
from movierec.serving.settings import Settings

pytestmark = pytest.mark.integration

OPERATIONS = {
    ("POST", "/api/v1/retrieval"),
    ("POST", "/api/v1/ranking"),
    ("POST", "/api/v1/recommendations"),
    ("GET", "/api/v1/items/{item_id}"),
    ("GET", "/api/v1/items/{item_id}/similar"),
    ("GET", "/api/v1/popular"),
    ("POST", "/api/v1/feedback"),
    ("GET", "/api/v1/ping"),
    ("POST", "/admin/reload"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
}

# The document the app serves at /openapi.json; building it neither reads settings' paths nor loads a bundle.
OPENAPI = create_app(Settings(api_key=""), load=False).openapi()
CONFIG = schemathesis.Config.from_dict({"seed": 20240601})
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)


def test_the_fuzzed_schema_covers_every_route() -> None:
    found = {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item}
    assert found == OPERATIONS, f"the API changed: update OPERATIONS ({sorted(found ^ OPERATIONS)})"


@pytest.fixture(scope="module")
def fuzz_app(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An app on the tiny bundle with its own database and an unguessable admin key."""
    database: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite"
    app = create_app(make_settings(tiny_project, database, api_key=secrets.token_hex(16)))
    yield app
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # schemathesis started the lifespan (bundle load) on the first request


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_service_fail(case: schemathesis.Case, fuzz_app: Any) -> None:
    response = case.call_and_validate(app=fuzz_app, checks=[not_a_server_error])
    if case.operation.path == "/ready" and case.method.upper() == "GET":
        assert response.status_code == 200, "the fuzzed app did not load the bundle"

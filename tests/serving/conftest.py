"""Fixtures of the serving tests: one tiny real bundle per session, a client around the app, a real
PostgreSQL server, and each storage backend in turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from bundle_fixture import TinyProject, build_tiny_project, make_settings
from fastapi.testclient import TestClient
from postgres_server import PostgresServer, require_postgres
from storage_backends import Backend

import movierec  # noqa: F401  (Keras 2 before TensorFlow)
from movierec.serving.app import create_app
from movierec.serving.settings import Settings


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's), started once for the session on a free loopback port."""
    server = PostgresServer(require_postgres())
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each storage backend in turn: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        name, url = server.new_database()
        found = Backend("postgresql", url, tmp_path, server, name)
    else:
        found = Backend("sqlite", tmp_path / "svc.sqlite", tmp_path)
    yield found
    found.close()


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """A project on a tiny synthetic dataset, taken through every pipeline step up to ``bundle``."""
    return build_tiny_project(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="session")
def settings(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tiny_project, tmp_path_factory.mktemp("db") / "serve.sqlite")


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the app on the tiny bundle, with the lifespan (bundle loading) run."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def manifest(tiny_project: TinyProject) -> dict[str, Any]:
    return json.loads((tiny_project.checkpoints / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def histories(tiny_project: TinyProject) -> dict[int, set[int]]:
    """Every user's items in the data the bundle serves."""
    events = pq.read_table(tiny_project.interactions, columns=["user_id", "item_id"]).to_pydict()
    out: dict[int, set[int]] = {}
    for user, item in zip(events["user_id"], events["item_id"]):
        out.setdefault(int(user), set()).add(int(item))
    return out


@pytest.fixture(scope="session")
def catalogue(tiny_project: TinyProject) -> dict[int, dict[str, Any]]:
    """The served catalogue: item id -> year and genres."""
    table = pq.read_table(
        tiny_project.checkpoints / "retrieval" / "catalogue.parquet", columns=["item_id", "year", "genres"]
    ).to_pydict()
    return {
        int(i): {"year": None if y is None or np.isnan(y) else int(y), "genres": [g for g in gs if g]}
        for i, y, gs in zip(table["item_id"], table["year"], table["genres"])
    }

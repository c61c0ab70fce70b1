"""A real PostgreSQL server for tests (see :mod:`movierec.serving.postgres_cluster`), or a skip
naming the Debian package when it is not installed; a failure instead under
``MOVIEREC_REQUIRE_POSTGRES`` (CI), where these tests must run.

Imported by name (``from postgres_server import ...``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from movierec.serving.postgres_cluster import ThrowawayPostgres as PostgresServer
from movierec.serving.postgres_cluster import postgres_bin

__all__ = ["PostgresServer", "require_postgres"]


def require_postgres() -> Path:
    """The PostgreSQL programs' folder; skips the test without them, or fails it under
    ``MOVIEREC_REQUIRE_POSTGRES``."""
    folder = postgres_bin()
    if folder is None:
        message = "PostgreSQL is not installed; `make test` installs it (Debian package postgresql)"
        if os.environ.get("MOVIEREC_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    return folder

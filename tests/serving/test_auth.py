"""Client API keys with scopes (issue 9, finding 4: anyone could post feedback as any user)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_fixture import TinyProject, make_settings
from fastapi.testclient import TestClient

from movierec.serving.app import create_app
from movierec.serving.auth import AuthConfigError, KeyRing, is_loopback

ROOT = Path(__file__).resolve().parents[2]
KEYS = "reader-key:read,writer-key:read+write,admin-key:admin"


def test_keys_parse_with_their_scopes_and_admin_implies_the_others() -> None:
    ring = KeyRing.parse(KEYS, admin_key="", auth="on", host="127.0.0.1")
    assert ring.required
    assert ring.scopes_of("reader-key") == {"read"}
    assert ring.scopes_of("writer-key") == {"read", "write"}
    assert ring.scopes_of("admin-key") == {"read", "write", "admin"}
    assert ring.scopes_of("nope") is None and ring.scopes_of(None) is None and ring.scopes_of("") is None
    assert b"reader-key" not in repr(ring).encode()  # only digests are kept


@pytest.mark.parametrize(
    ("text", "message"),
    [("justakey", "is not KEY:SCOPE"), ("k:read,k2:root", "unknown scope 'root'"), (":read", "is not KEY:SCOPE")],
)
def test_malformed_keys_are_refused_with_the_entry_named(text: str, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        KeyRing.parse(text, auth="off")


def test_keys_are_required_off_loopback_and_optional_on_it() -> None:
    assert not KeyRing.parse("", auth="auto", host="127.0.0.1").required
    assert not KeyRing.parse("", auth="auto", host="localhost").required
    assert not KeyRing.parse("", auth="auto", host="::1").required
    assert KeyRing.parse("k:read", auth="auto", host="0.0.0.0").required
    assert not KeyRing.parse("", auth="off", host="0.0.0.0").required
    with pytest.raises(AuthConfigError, match="not loopback"):
        KeyRing.parse("", auth="auto", host="0.0.0.0")
    with pytest.raises(AuthConfigError, match="MOVIEREC_AUTH=on"):
        KeyRing.parse("", auth="on", host="127.0.0.1")
    assert is_loopback("127.0.0.5") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


@pytest.fixture(scope="module")
def secured(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app as in the documented production configuration: keys required."""
    settings = make_settings(
        tiny_project, tmp_path_factory.mktemp("auth") / "svc.sqlite", api_keys=KEYS, api_key="", auth="on"
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _user_and_item(client: TestClient) -> tuple[int, int]:
    rec = client.app.state.service.recommender
    return int(next(iter(rec.histories))), int(rec.catalogue.item_id[0])


def test_each_route_needs_a_key_with_its_scope(secured: TestClient) -> None:
    user, item = _user_and_item(secured)
    chain = {"user_id": user, "k": 5}
    event = {"user_id": user, "item_id": item, "event": "view"}
    # no key, or an unknown one: 401 with the way to send one
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
        r = secured.post("/api/v1/recommendations", json=chain, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
    assert secured.post("/api/v1/feedback", json=event).status_code == 401
    assert secured.get(f"/api/v1/items/{item}").status_code == 401
    # read: recommendations and the catalogue, not feedback
    reader = {"Authorization": "Bearer reader-key"}
    assert secured.post("/api/v1/recommendations", json=chain, headers=reader).status_code == 200
    assert secured.get(f"/api/v1/items/{item}/similar", headers=reader).status_code == 200
    denied = secured.post("/api/v1/feedback", json=event, headers=reader)
    assert denied.status_code == 403 and "'write' scope" in denied.json()["detail"]
    # write: feedback; admin routes need admin
    assert secured.post("/api/v1/feedback", json=event, headers={"X-API-Key": "writer-key"}).status_code == 201
    assert secured.post("/admin/reload", json={"path": "/nowhere"}, headers=reader).status_code == 403
    r = secured.post("/admin/reload", json={"path": "/nowhere"}, headers={"Authorization": "Bearer admin-key"})
    assert r.status_code == 200 and r.json()["reloaded"] is False  # authorised; the path itself is refused
    # operations stay open: probes and scrapers carry no key
    for path in ("/health", "/ready", "/metrics", "/api/v1/ping"):
        assert secured.get(path).status_code == 200, path


def test_the_loopback_demo_needs_no_key(client: TestClient) -> None:
    user, _ = _user_and_item(client)
    assert client.post("/api/v1/recommendations", json={"user_id": user, "k": 3}).status_code == 200
    r = client.post("/admin/reload", json={"path": "/nowhere"})  # admin still needs its key
    assert r.status_code == 401


def test_serve_off_loopback_without_keys_refuses_to_start(tiny_project: TinyProject, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_") or k == "MOVIEREC_PUSHGATEWAY"} | {
        "PYTHONPATH": str(ROOT / "src"),
        "MOVIEREC_BUNDLE_DIR": str(tiny_project.checkpoints),
        "MOVIEREC_DATABASE_PATH": str(tmp_path / "svc.sqlite"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and "MOVIEREC_API_KEYS" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr

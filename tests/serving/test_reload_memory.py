"""Reload without growth (issue 9, finding 8: a worker grew from 843 to 1,037 MB over 15 reloads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bundle_fixture import API_KEY, TinyProject, rebundle

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RELOADS = 20

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import movierec  # noqa: F401
    from fastapi.testclient import TestClient
    from movierec.serving.app import create_app
    from movierec.serving.settings import Settings

    first, second, database, key, reloads = sys.argv[1:6]

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

    settings = Settings(bundle_dir=first, database_path=database, api_key=key)
    series = []
    with TestClient(create_app(settings)) as client:
        for n in range(int(reloads) + 1):
            # alternate between two bundles, as a promote then a rollback would
            body = {"path": second if n % 2 == 0 else first}
            reply = client.post("/admin/reload", json=body, headers={"X-API-Key": key}).json()
            assert reply["reloaded"], reply
            for user in range(1, 30):
                client.post("/api/v1/recommendations", json={"user_id": user, "k": 10})
            series.append(rss_mb())
    print(json.dumps(series))
    """
)


def test_memory_after_twenty_reloads_is_within_five_percent_of_after_one(
    tiny_project: TinyProject, tmp_path: Path
) -> None:
    second = rebundle(tiny_project, tmp_path / "second" / "checkpoints", seed=11)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tiny_project.checkpoints),
            str(second),
            str(tmp_path / "db.sqlite"),
            API_KEY,
            str(RELOADS),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    series = json.loads(done.stdout.strip().splitlines()[-1])
    after_one, after_all = series[0], series[-1]
    print("resident MB after each reload:", [round(x) for x in series])
    # The bar is 5 % on ML-100K. The tiny bundle's own arrays are a few kilobytes, so the
    # process is nearly all TensorFlow and 5 % would hide a leak: before the fix this very run
    # grew 4.9 % (783 -> 821 MB, about 1.5 MB per reload); with it, 0.5 % (741 -> 745 MB).
    assert after_all <= after_one * 1.02, series
    assert after_all - after_one < 15.0, series

"""What the benchmark asks the server itself: readiness, popular items and the per-stage latency metrics."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from movierec.serving.bench_workload import POPULAR_POOL
from movierec.serving.bench_wrk import BenchError

API_KEY_ENV = "MOVIEREC_BENCH_API_KEY"  # a key for servers that require one (read and write scopes)
Stages = dict[tuple[str, str], tuple[float, float]]  # (endpoint, stage) -> (sum seconds, count)

_METRIC = re.compile(r"^recommendation_latency_seconds_(sum|count)\{([^}]*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Server:
    """A short-lived HTTP client for the server under test (never through a proxy)."""

    def __init__(self, url: str, timeout: float = 30.0, headers: dict[str, str] | None = None):
        self.url = url
        # trust_env=False: never route loopback traffic through a proxy from the environment
        self.http = httpx.Client(base_url=url, timeout=timeout, trust_env=False, headers=headers or {})

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def ready(self) -> dict[str, Any]:
        """``GET /ready``'s answer when the server is ready.

        Raises:
            BenchError: nothing answers, or the server is not ready (with its reason).
        """
        try:
            response = self.http.get("/ready")
        except httpx.HTTPError as exc:
            raise BenchError(
                f"no server answers at {self.url} ({type(exc).__name__}: {exc or 'no detail'}); "
                f"start it first, e.g. `movierec serve --port {urlsplit(self.url).port or 80}`"
            ) from None
        try:
            ready = response.json()
        except ValueError:
            ready = {}
        if not isinstance(ready, dict):
            ready = {}
        if response.status_code != 200 or not ready.get("ready"):
            reason = ready.get("reason")
            raise BenchError(
                f"the server at {self.url} is not ready (GET /ready: HTTP {response.status_code}"
                f"{', ' + str(reason) if reason else ''}); wait for the bundle to load, then run the benchmark again"
            )
        return ready

    def popular(self, k: int = POPULAR_POOL) -> list[int]:
        """Distinct item ids of ``GET /api/v1/popular?k=k``, most popular first.

        Raises:
            BenchError: an error status or an empty catalogue.
        """
        response = self.http.get("/api/v1/popular", params={"k": k})
        if response.status_code in (401, 403):
            raise BenchError(
                f"GET {self.url}/api/v1/popular answered HTTP {response.status_code}: the server requires an API key "
                f"with the read and write scopes; give it in {API_KEY_ENV} (or --api-key)"
            )
        if response.status_code != 200:
            raise BenchError(f"GET {self.url}/api/v1/popular?k={k} answered HTTP {response.status_code}")
        items = list(dict.fromkeys(int(item["item_id"]) for item in response.json()["items"]))
        if not items:
            raise BenchError(f"GET {self.url}/api/v1/popular returned no items; the catalogue is empty")
        return items

    def stages(self) -> Stages | None:
        """The latency histogram's sums and counts from ``/metrics`` (None when it is not exposed)."""
        try:
            response = self.http.get("/metrics")
        except httpx.HTTPError:
            return None
        return parse_stage_metrics(response.text) if response.status_code == 200 else None


def parse_stage_metrics(text: str) -> Stages:
    """``{(endpoint, stage): (sum_seconds, count)}`` of ``recommendation_latency_seconds``."""
    out: dict[tuple[str, str], list[float]] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        if "endpoint" not in labels or "stage" not in labels:
            continue
        slot = out.setdefault((labels["endpoint"], labels["stage"]), [0.0, 0.0])
        slot[0 if match.group(1) == "sum" else 1] += float(match.group(3))
    return {key: (s, c) for key, (s, c) in out.items()}


def stage_means(before: Stages | None, after: Stages | None, endpoint: str | None) -> dict[str, dict[str, float]]:
    """Mean server-side milliseconds per stage of ``endpoint`` between two snapshots (stages seen only)."""
    if before is None or after is None or endpoint is None:
        return {}
    out = {}
    for (name, stage), (s1, c1) in after.items():
        if name != endpoint:
            continue
        s0, c0 = before.get((name, stage), (0.0, 0.0))
        if c1 - c0 > 0:
            out[stage] = {"mean_ms": round((s1 - s0) / (c1 - c0) * 1000.0, 3), "count": int(c1 - c0)}
    return out

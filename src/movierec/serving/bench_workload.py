"""The benchmark's workload: seeded users, the six scenarios and their pre-built requests."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20240601
USER_POOL = 500
COLD_SHARE = 0.10
COLD_OFFSET = 1_000_000  # unknown ids start this far above the known range
RETRIEVAL_K = 100
RANKING_CANDIDATES = 100
CHAIN_K = 10
CHAIN_CANDIDATES = 100
SIMILAR_K = 10
POPULAR_POOL = 1000
BODIES = 2000  # distinct requests per scenario; wrk cycles through them
FEEDBACK_USER_BASE = 10**18  # benchmark feedback goes to ids from here up, never to real users
FEEDBACK_USERS = 20_000  # distinct synthetic ids per run: a few events each, under any per-user limit
FEEDBACK_RATINGS = (1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0)

# (name, method, path, server-side endpoint label in /metrics or None), in the order they run
SCENARIOS: tuple[tuple[str, str, str, str | None], ...] = (
    ("floor", "GET", "/api/v1/ping", None),
    ("retrieval", "POST", "/api/v1/retrieval", "retrieval"),
    ("retr-fresh", "POST", "/api/v1/retrieval", "retrieval"),
    ("ranking", "POST", "/api/v1/ranking", "ranking"),
    ("chain", "POST", "/api/v1/recommendations", "recommendations"),
    ("chain-fresh", "POST", "/api/v1/recommendations", "recommendations"),
    ("similar", "GET", "/api/v1/items/{id}/similar", "similar"),
    ("feedback", "POST", "/api/v1/feedback", "feedback"),
)
NAMES = tuple(name for name, *_ in SCENARIOS)
# the "-fresh" scenarios send the same requests as their namesakes, each asking for a reply
# computed anew (not one the service kept from an earlier identical request)
FRESH = {"retr-fresh": "retrieval", "chain-fresh": "chain"}
NO_CACHE = (("Cache-Control", "no-cache"),)


@dataclass(frozen=True)
class Scenario:
    """One endpoint under load and the requests wrk cycles through.

    ``requests`` holds ``(method, path, body)`` triples; ``body`` is compact JSON, or an
    empty string for a GET. ``endpoint`` names the endpoint in the service's
    ``recommendation_latency_seconds`` histogram (None: the endpoint records none).
    """

    name: str
    label: str
    endpoint: str | None
    requests: tuple[tuple[str, str, str], ...]
    headers: tuple[tuple[str, str], ...] = ()

    def write(self, path: Path, headers: dict[str, str] | None = None) -> Path:
        """Write the requests as ``bench.lua`` reads them: ``METHOD<TAB>PATH<TAB>BODY`` a line,
        after one ``HEADER<TAB>NAME<TAB>VALUE`` line per header sent with every request."""
        sent = {**(headers or {}), **dict(self.headers)}
        lines = [f"HEADER\t{name}\t{value}\n" for name, value in sent.items()]
        lines += [f"{m}\t{p}\t{b}\n" for m, p, b in self.requests]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold an API key
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(lines)
        return path


def user_pool(n_users: int, size: int = USER_POOL, cold_share: float = COLD_SHARE, seed: int = SEED) -> list[int]:
    """A fixed, seeded mix of known ids (from ``1..n_users``) and unknown ids, in seeded order."""
    rng = random.Random(seed)
    n_cold = max(1, round(size * cold_share)) if cold_share > 0 else 0
    n_known = min(size - n_cold, n_users) if n_users > 0 else 0
    known = rng.sample(range(1, n_users + 1), n_known) if n_known else []
    cold = [n_users + COLD_OFFSET + i for i in range(n_cold)]
    pool = known + cold
    rng.shuffle(pool)
    return pool


def feedback_users(run: int, count: int = FEEDBACK_USERS) -> range:
    """The synthetic user ids that run ``run`` (from 0) sends feedback for: a fresh range per run."""
    start = FEEDBACK_USER_BASE + run * count
    return range(start, start + count)


def _body(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))


def build_scenarios(
    users: list[int], popular: list[int], run: int = 0, count: int = BODIES, seed: int = SEED
) -> list[Scenario]:
    """The scenarios, in the order they run, each with ``count`` requests.

    Args:
        users: the user pool (:func:`user_pool`); requests cycle through it in order.
        popular: catalogue item ids (the top of ``/api/v1/popular``), for ranking candidates,
            similar-item queries and feedback items.
        run: the run's number (from 0); feedback goes to :func:`feedback_users` of that run.
        count: requests per scenario, except feedback: one request per synthetic user of
            the run (:data:`FEEDBACK_USERS`).
        seed: the seed of every random choice.
    """
    if not users or not popular:
        raise ValueError("the workload needs at least one user and one catalogue item")
    rng = random.Random(seed + 1)
    n_cand = min(RANKING_CANDIDATES, len(popular))
    user = [users[n % len(users)] for n in range(count)]
    by_name: dict[str, list[tuple[str, str, str]]] = {
        "floor": [("GET", "/api/v1/ping", "")],
        "retrieval": [("POST", "/api/v1/retrieval", _body({"user_id": u, "k": RETRIEVAL_K})) for u in user],
        "ranking": [
            ("POST", "/api/v1/ranking", _body({"user_id": u, "item_ids": rng.sample(popular, n_cand)})) for u in user
        ],
        "chain": [
            ("POST", "/api/v1/recommendations", _body({"user_id": u, "k": CHAIN_K, "candidates": CHAIN_CANDIDATES}))
            for u in user
        ],
        "similar": [("GET", f"/api/v1/items/{rng.choice(popular)}/similar?k={SIMILAR_K}", "") for _ in range(count)],
    }
    for fresh, same in FRESH.items():
        by_name[fresh] = by_name[same]
    fb_users = feedback_users(run)
    by_name["feedback"] = [
        (
            "POST",
            "/api/v1/feedback",
            _body(
                {
                    "user_id": u,
                    "item_id": rng.choice(popular),
                    "event": "rating",
                    "rating": rng.choice(FEEDBACK_RATINGS),
                }
            ),
        )
        for u in fb_users
    ]
    return [
        Scenario(name, f"{method} {path}", endpoint, tuple(by_name[name]), NO_CACHE if name in FRESH else ())
        for name, method, path, endpoint in SCENARIOS
    ]


def describe(users: list[int], n_users: int, popular: list[int]) -> dict[str, object]:
    """The workload's settings, for the JSON results."""
    n_cold = sum(1 for u in users if u > n_users)
    return {
        "seed": SEED,
        "user_pool": len(users),
        "known_users": len(users) - n_cold,
        "cold_users": n_cold,
        "cold_user_ids_from": n_users + COLD_OFFSET,
        "retrieval_k": RETRIEVAL_K,
        "ranking_candidates": min(RANKING_CANDIDATES, len(popular)),
        "item_pool": f"top {len(popular)} of /api/v1/popular",
        "chain_k": CHAIN_K,
        "chain_candidates": CHAIN_CANDIDATES,
        "similar_k": SIMILAR_K,
        "feedback_user_ids_from": FEEDBACK_USER_BASE,
        "feedback_users_per_run": FEEDBACK_USERS,
    }

"""Finished replies for users served on their own history, kept per bundle and reused.

A known user who sends neither a history nor demographics gets a reply that depends only on
the bundle, the user's stored feedback and the request's parameters. The same user asking
again (a page reload, the next screen of an app) would get the very same bytes, so the
routes keep each such reply, keyed by exactly those inputs, and answer a repeat with it:
the work is then a dictionary lookup where retrieval and ranking cost about 0.3 ms.

What keeps a kept reply correct:

- the key holds the user's stored feedback items (read from the database on every request,
  as before), so feedback posted through any worker changes the key on the next request;
- the cache belongs to one bundle version and empties itself when another is served;
- requests with a history or demographics of their own are never cached.

The cache is bounded in bytes (``MOVIEREC_REPLY_CACHE_BYTES``, 0 turns it off) and drops
the least recently used replies first. It lives in each worker's memory: workers fill their
own copies, and nothing is shared or written to disk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from movierec.serving.request_log import log_lists
from movierec.serving.service import Result

REPLIES = Counter("reply_cache_total", "Recommendation replies served from the reply cache or computed", ["result"])
HIT = REPLIES.labels(result="hit")
MISS = REPLIES.labels(result="miss")

# a reply's bookkeeping (key, entry, result lists) on top of its bytes, counted against the bound
_OVERHEAD_BYTES = 512


@dataclass(frozen=True)
class Reply:
    """A finished reply: its body, the result it came from (for metrics) and its log columns."""

    body: bytes
    result: Result
    logged: tuple[str, str]

    @classmethod
    def of(cls, body: bytes, result: Result) -> Reply:
        """A reply for ``result`` with the given body; the log columns are encoded once here."""
        kept = Result(result.item_ids, result.scores, result.is_fallback, result.fallback_reason, result.index)
        return cls(body, kept, log_lists(result.item_ids, result.scores))

    @property
    def size(self) -> int:
        """About how many bytes the reply holds."""
        return len(self.body) + len(self.logged[0]) + len(self.logged[1]) + _OVERHEAD_BYTES


def cache_key(endpoint: str, body: Any, feedback: Sequence[int], index: str) -> Hashable | None:
    """What a reply to ``body`` depends on, or None when it must not be cached.

    Args:
        endpoint: the route (``retrieval`` or ``recommendations``).
        body: a :class:`~movierec.serving.schemas.RetrievalRequest` or a subclass.
        feedback: the user's stored feedback items, as the request read them.
        index: the index the request resolved to.
    """
    if body.user_id is None or body.history or body.user_features is not None:
        return None
    filters = body.filters
    return (
        endpoint,
        body.user_id,
        tuple(feedback),
        body.k,
        getattr(body, "candidates", None),
        getattr(body, "diversity", None),
        body.exclude_seen,
        index,
        (tuple(filters.genres or ()), filters.year_min, filters.year_max) if filters is not None else None,
    )


class ReplyCache:
    """Replies by key for one bundle version, least recently used dropped first past ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.version: str | None = None
        self.bytes = 0
        self._replies: OrderedDict[Hashable, Reply] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, version: str, key: Hashable | None) -> Reply | None:
        """The kept reply for ``key`` under bundle ``version``, or None (counted as a miss)."""
        if key is None or self.max_bytes == 0:
            return None
        with self._lock:
            if version != self.version:
                self._reset(version)
            found = self._replies.get(key)
            if found is not None:
                self._replies.move_to_end(key)
        (MISS if found is None else HIT).inc()
        return found

    def put(self, version: str, key: Hashable | None, reply: Reply) -> None:
        """Keep ``reply`` for ``key`` (replies larger than the whole bound are not kept)."""
        size = reply.size
        if key is None or size > self.max_bytes:
            return
        with self._lock:
            if version != self.version:
                self._reset(version)
            old = self._replies.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._replies[key] = reply
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, dropped = self._replies.popitem(last=False)
                self.bytes -= dropped.size

    def _reset(self, version: str) -> None:
        self._replies.clear()
        self.bytes = 0
        self.version = version

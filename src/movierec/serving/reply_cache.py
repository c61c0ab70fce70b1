"""Finished replies for users served on their own history, kept per bundle load and reused.

A user named by ``user_id`` who sends neither a history nor demographics gets a reply that
depends only on the bundle, the user's stored feedback and the request's parameters. The
same user asking again (a page reload, the next screen of an app) would get the very same
bytes, so the routes keep each such reply and answer a repeat with it: the work is then a
dictionary lookup where retrieval and ranking cost about 0.3 ms.

What keeps a kept reply correct:

- a reply is kept under the request's parameters together with a digest of the user's
  stored feedback items as that request read them; the items are read (or found
  unchanged, see :meth:`~movierec.serving.store.EventStore.items_of`) on every request,
  so feedback posted through any worker makes the next request miss, and its fresh reply
  replaces the old one under the same key;
- the cache belongs to one bundle load (:attr:`Recommender.load_id`) and empties itself
  when another is served, even one carrying the same version label;
- requests with a history or demographics of their own are never cached; ids the bundle
  knows nothing of (no events, no demographics, no feedback) all get the same reply, so
  they share one kept reply, and a client cycling made-up ids cannot push real users'
  replies out.

The cache is bounded in bytes (``MOVIEREC_REPLY_CACHE_BYTES``, 0 turns it off), counting
each reply's body, its request-log columns, its key and the bookkeeping around them, and
drops the least recently used replies first. It lives in each worker's memory: workers
fill their own copies, and nothing is shared or written to disk.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from movierec.serving.request_log import log_lists
from movierec.serving.service import Result

REPLIES = Counter("reply_cache_total", "Recommendation replies served from the reply cache or computed", ["result"])
HIT = REPLIES.labels(result="hit")
MISS = REPLIES.labels(result="miss")

# what a kept reply holds besides its strings: the key (a tuple of about ten small values),
# the entry, the Result and the dictionary slot, measured with tracemalloc (about 1 KB)
_OVERHEAD_BYTES = 1024
_NO_FEEDBACK = b""


def feedback_digest(feedback: Sequence[int]) -> bytes:
    """A fixed-size fingerprint of a user's feedback items, in order (empty for none)."""
    if not feedback:
        return _NO_FEEDBACK
    return hashlib.blake2b(np.asarray(feedback, dtype=np.int64).tobytes(), digest_size=16).digest()


@dataclass(frozen=True)
class Reply:
    """A finished reply: its body, how it was produced (for metrics) and its log columns."""

    body: bytes
    result: Result
    logged: tuple[str, str]
    feedback: bytes = _NO_FEEDBACK

    @classmethod
    def of(cls, body: bytes, result: Result, feedback: bytes = _NO_FEEDBACK) -> Reply:
        """A reply for ``result`` with the given body; the log columns are encoded once here.

        The kept result has no lists (the log columns carry them): only the fallback flags
        and the index, which the metrics of a repeat need.
        """
        kept = Result([], [], result.is_fallback, result.fallback_reason, result.index)
        return cls(body, kept, log_lists(result.item_ids, result.scores), feedback)

    @property
    def size(self) -> int:
        """About how many bytes keeping the reply costs."""
        return len(self.body) + len(self.logged[0]) + len(self.logged[1]) + _OVERHEAD_BYTES


def cache_key(endpoint: str, body: Any, index: str, user: int | None) -> Hashable | None:
    """The parameters a reply to ``body`` depends on besides the feedback, or None when it
    must not be cached (the request describes its user itself, or names none).

    Args:
        endpoint: the route (``retrieval`` or ``recommendations``).
        body: a :class:`~movierec.serving.schemas.RetrievalRequest` or a subclass.
        index: the index the request resolved to.
        user: whom the reply depends on: ``body.user_id``, or None for any id the bundle
            knows nothing of (they all get the same reply).
    """
    if body.user_id is None or body.history or body.user_features is not None:
        return None
    filters = body.filters
    return (
        endpoint,
        user,
        body.k,
        getattr(body, "candidates", None),
        getattr(body, "diversity", None),
        body.exclude_seen,
        index,
        (tuple(filters.genres or ()), filters.year_min, filters.year_max) if filters is not None else None,
    )


class ReplyCache:
    """Replies by key for one bundle load, least recently used dropped first past ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.load_id: int | None = None
        self.bytes = 0
        self._replies: OrderedDict[Hashable, Reply] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, load_id: int, key: Hashable | None, feedback: bytes) -> Reply | None:
        """The kept reply for ``key`` under bundle load ``load_id`` made with the same feedback
        (its :func:`feedback_digest`), or None (counted as a miss)."""
        if key is None or self.max_bytes == 0:
            return None
        with self._lock:
            if load_id != self.load_id:
                if self.load_id is not None and load_id < self.load_id:
                    MISS.inc()
                    return None  # a request that began before the swap
                self._reset(load_id)
            found = self._replies.get(key)
            if found is not None and found.feedback != feedback:
                found = None  # made before the user's latest feedback: the fresh reply replaces it
            elif found is not None:
                self._replies.move_to_end(key)
        (MISS if found is None else HIT).inc()
        return found

    def put(self, load_id: int, key: Hashable | None, reply: Reply) -> None:
        """Keep ``reply`` for ``key`` (replies larger than the whole bound are not kept)."""
        size = reply.size
        if key is None or size > self.max_bytes:
            return
        with self._lock:
            if load_id != self.load_id:
                if self.load_id is not None and load_id < self.load_id:
                    return  # a request that began before the swap: its reply is of the old load
                self._reset(load_id)
            old = self._replies.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._replies[key] = reply
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, dropped = self._replies.popitem(last=False)
                self.bytes -= dropped.size

    def _reset(self, load_id: int) -> None:
        self._replies.clear()
        self.bytes = 0
        self.load_id = load_id

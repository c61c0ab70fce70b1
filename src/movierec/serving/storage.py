"""What the service keeps outside its workers, behind one interface with two backends.

Feedback events, the reload pointer and the request log live in a :class:`Storage`:

- :class:`~movierec.serving.sqlite_storage.SqliteStorage`, the default: two SQLite files
  on the host's disk (``MOVIEREC_DATABASE_PATH`` and the request log's file beside it),
  shared by the workers of one ``movierec serve``;
- :class:`~movierec.serving.postgres_storage.PostgresStorage`: one PostgreSQL database
  (``MOVIEREC_DATABASE_URL``), shared by every worker of every replica on any host.

Both keep the same guarantees: a user's feedback is capped for serving and rate-limited
across every writer; a write waits at most ``database_timeout_seconds`` and then raises
:class:`~movierec.serving.database.StoreUnavailable` with the reason (answered 503);
reads never wait on writers; :meth:`Storage.health` says why the service cannot take
writes (``/ready`` turns 503 with it). The service's own classes (``EventStore``,
``BundlePointer``, ``RequestLog``, ``QualityDigest``) hold the logic and call only this
interface; the backends hold the SQL.

A backend's :attr:`Storage.changes` tells a worker cheaply whether any feedback was
committed since it last read a user's items (see ``EventStore.items_of``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from movierec.serving.database import StoreUnavailable

__all__ = ["ChangeSignal", "Pointer", "RateLimited", "Storage", "StoreUnavailable", "is_database_url", "open_storage"]

# a request-log row, in the columns' order: request_id, time, user_id, endpoint, model_version,
# item_ids (JSON), scores (JSON), latency_ms, is_fallback (0 or 1), fallback_reason
LogRow = tuple[str, float, int | None, str, str | None, str, str, float, int, str | None]
LOG_COLUMNS = (
    "request_id",
    "time",
    "user_id",
    "endpoint",
    "model_version",
    "item_ids",
    "scores",
    "latency_ms",
    "is_fallback",
    "fallback_reason",
)


class RateLimited(Exception):
    """A user posted more feedback than the rate limit allows; retry after ``retry_after`` seconds."""

    def __init__(self, user_id: int, limit: int, window: float, retry_after: float):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"user {user_id} posted {limit} feedback events in the last {window:g} s, the most allowed "
            f"(MOVIEREC_FEEDBACK_RATE_LIMIT); retry in {self.retry_after} s"
        )


class Pointer(NamedTuple):
    """The bundle every worker should serve after an admin reload.

    ``source``: a folder every replica can read, or a registry address pinned to one version
    (``models:/movierec/3``); ``version``: the bundle's digest; ``base``: the version of the
    configured bundle the reloading worker had started from (a worker configured with
    another bundle, as in a new deployment, does not follow this reload).
    """

    source: str
    version: str
    base: str | None


class ChangeSignal(Protocol):
    """A cheap per-request answer to "has anyone committed feedback since I last looked?"."""

    def now(self) -> int | None:
        """A value that moves whenever feedback was committed by any worker; None: unknown now
        (the caller reads the database)."""

    def advance(self) -> None:
        """Called by this process right after it committed feedback."""

    def close(self) -> None:
        """Release what the signal holds."""


class Storage(Protocol):
    """Feedback, the reload pointer and the request log (see the module docstring)."""

    where: str  # for messages: the SQLite path or the PostgreSQL address without credentials
    changes: ChangeSignal

    def add_feedback(
        self, user_id: int, item_id: int, rating: float | None, event: str, timestamp: int, limit: int, window: float
    ) -> int:
        """Store one event unless the user posted ``limit`` events in the last ``window`` seconds
        (counted across every writer); returns its id.

        Raises:
            RateLimited: the user is at the limit (nothing stored).
            StoreUnavailable: the database cannot take the write now.
        """

    def recent_items(self, user_id: int, n: int) -> list[int]:
        """The items of the user's ``n`` most recently posted events, in the order of their timestamps."""

    def all_feedback(self) -> list[tuple[int, int, float | None, str, int]]:
        """Every event as ``(user, item, rating, event, timestamp)``, oldest timestamp first."""

    def feedback_after(self, after_id: int, until: float, limit: int) -> list[tuple[int, float, int, int]]:
        """``(id, received, user, item)`` of events with an id above ``after_id`` received up to
        ``until``, in id order, at most ``limit``."""

    def last_feedback_id(self) -> int:
        """The highest event id (0 when there is none)."""

    def get_pointer(self) -> Pointer | None:
        """The last reload, or None."""

    def set_pointer(self, pointer: Pointer) -> None:
        """Record a reload for every worker."""

    def clear_pointer(self) -> None:
        """Forget earlier reloads."""

    def write_logs(self, rows: list[LogRow]) -> None:
        """Store request-log rows in one transaction (a request id already stored is skipped)."""

    def prune_logs(self, cutoff: float, max_rows: int) -> int:
        """Delete log rows older than ``cutoff`` and all but the newest ``max_rows``; returns how many."""

    def logs_after(self, cursor: int, limit: int) -> list[tuple[int, float, int | None, str, str]]:
        """``(cursor, time, user_id, endpoint, item_ids)`` of log rows past ``cursor`` in cursor
        order, at most ``limit``; only rows no earlier-numbered row can still join."""

    def last_log_cursor(self) -> int:
        """The cursor of the newest log row (0 when there is none)."""

    def read_logs(self) -> list[dict[str, Any]]:
        """Every log row as a dict of :data:`LOG_COLUMNS` (JSON columns still encoded)."""

    def health(self) -> str | None:
        """Why the service cannot take writes now, or None."""

    def close(self) -> None:
        """Close every connection."""


def is_database_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_storage(settings: Any = None, *, location: str | Path | None = None) -> Storage:
    """The storage the settings name: PostgreSQL when ``database_url`` is set, else SQLite at ``database_path``.

    ``location`` (a SQLite path or a PostgreSQL URL) overrides both settings.

    Raises:
        StoreUnavailable: the database cannot be opened or prepared, with the reason.
    """
    from movierec.serving.settings import Settings

    settings = settings or Settings()
    target = location if location is not None else (settings.database_url or settings.database_path)
    if is_database_url(target):
        from movierec.serving.postgres_storage import PostgresStorage

        return PostgresStorage(str(target), settings)
    from movierec.serving.sqlite_storage import SqliteStorage

    return SqliteStorage(Path(target), settings)

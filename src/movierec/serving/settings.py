"""Service settings, read from the environment (``MOVIEREC_*``) by one typed object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from movierec.errors import ParamsError
from movierec.redact import redact


class Settings(BaseSettings):
    """Where the bundle and the service's own database live, and how the service behaves.

    Every field can be set with an environment variable of the same name prefixed by
    ``MOVIEREC_`` (for example ``MOVIEREC_BUNDLE_DIR=/models/current``).
    """

    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore")

    bundle_dir: Path = Path("checkpoints")  # everything the service serves (see models/bundle.py)
    # a registry address (models:/movierec@champion) to serve instead of bundle_dir; the bundle is
    # downloaded into model_cache_dir. The store: tracking_uri, else MLFLOW_TRACKING_URI, else
    # the project's embedded mlflow/mlflow.db
    model_uri: str = ""
    model_cache_dir: Path = Path("data/serving/models")
    tracking_uri: str = ""
    registered_model: str = "movierec"  # the name /admin/reload's alias or version refers to
    database_path: Path = Path("data/serving/movierec.sqlite")
    # the database several replicas share (postgresql://USER:PASSWORD@HOST:5432/NAME): feedback, the
    # request log and the reload pointer live there instead of the SQLite files at database_path
    database_url: str = ""
    database_pool_size: PositiveInt = 4  # PostgreSQL: connections per worker for reads, and again for writes
    # PostgreSQL: how a worker learns that feedback changed. "query": read the user's feedback on every
    # request (one indexed query: feedback through any replica is in the very next answer); "notify":
    # LISTEN/NOTIFY feeding a local counter (no query per request, but a notification still in flight
    # can leave a next request a few milliseconds behind; see serving/notify_clock.py)
    feedback_signal: Literal["query", "notify"] = "query"
    database_timeout_seconds: PositiveFloat = 1.0  # the longest a request waits for the database (then 503)
    min_free_disk_bytes: NonNegativeInt = 50 * 1024 * 1024  # less free space on the database's disk: /ready is 503
    database_identity: str = ""  # set by `movierec serve` for its workers (the file they must share)
    request_log_identity: str = ""  # the same for the request log's file, beside the database
    # "auto": exact scoring ("brute") on catalogues of at most brute_max_items items, where it
    # was measured faster than an index (ML-100K: 0.15 ms against FAISS's 0.29 ms per
    # retrieval), FAISS above; or always "faiss", "scann" or "brute"
    default_index: Literal["auto", "faiss", "scann", "brute"] = "auto"
    brute_max_items: PositiveInt = 10_000
    api_key: str = ""  # an admin key (same as an api_keys entry KEY:admin); empty: none
    # client keys and their scopes: "KEY:read,KEY2:read+write,KEY3:admin" (see serving/auth.py)
    api_keys: str = ""
    # "auto": keys are required unless the service listens on a loopback address; "on"; "off"
    auth: Literal["auto", "on", "off"] = "auto"
    host: str = "127.0.0.1"  # the address the service listens on (set by `movierec serve`)
    max_body_bytes: PositiveInt = 64 * 1024
    candidates: PositiveInt = 100
    request_budget_seconds: PositiveFloat = 2.0  # a request still working after this long is answered 503
    feedback_per_user: PositiveInt = 500  # a user's most recent feedback events used for serving
    feedback_rate_limit: PositiveInt = 120  # feedback events one user may post per window (then 429)
    feedback_rate_window_seconds: PositiveFloat = 60.0
    log_queue_size: PositiveInt = 10_000
    request_log_block_seconds: PositiveFloat = 0.05  # how long a request waits for room in a full log queue
    request_log_max_age_days: PositiveFloat = 30.0  # request-log rows older than this are deleted
    request_log_max_rows: PositiveInt = 1_000_000  # at most this many request-log rows are kept (the newest)
    request_log_prune_seconds: PositiveFloat = 60.0  # how often retention runs
    # finished replies kept per worker for users served on their own history (serving/reply_cache.py); 0: off
    reply_cache_bytes: NonNegativeInt = 32 * 1024 * 1024
    reload_poll_seconds: PositiveFloat = 2.0  # how often a worker checks whether another worker reloaded
    # the windowed quality gauges (coverage, interacted share; serving/quality.py): their window,
    # how often one worker recomputes them off the request path, and the most (user, item) pairs kept
    quality_window_seconds: PositiveFloat = 3600.0
    quality_interval_seconds: PositiveFloat = 15.0
    quality_max_pairs: PositiveInt = 200_000

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/NAME), or empty for SQLite")
        return value


def load_service_settings() -> Settings:
    """The settings from the environment; a bad value is a one-line error naming the variable.

    Raises:
        ParamsError: a ``MOVIEREC_*`` variable holds a value the service cannot use.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MOVIEREC_{'_'.join(str(p) for p in e['loc']).upper()}={_shown(e)!r}: {e['msg']}" for e in exc.errors()
        )
        raise ParamsError(f"bad service setting: {problems}") from exc


def _shown(error: Any) -> Any:
    """The value of a failed setting as an error message may show it: URLs without their credentials."""
    value = error.get("input")
    return redact(value) if isinstance(value, str) and "://" in value else value


def get_settings() -> Settings:
    """A fresh settings object (tests override the dependency)."""
    return Settings()

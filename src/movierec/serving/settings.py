"""Service settings, read from the environment (``MOVIEREC_*``) by one typed object."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the bundle and the service's own database live, and how the service behaves.

    Every field can be set with an environment variable of the same name prefixed by
    ``MOVIEREC_`` (for example ``MOVIEREC_BUNDLE_DIR=/models/current``).
    """

    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore")

    bundle_dir: Path = Path("checkpoints")  # everything the service serves (see models/bundle.py)
    database_path: Path = Path("data/serving/movierec.sqlite")
    default_index: str = "faiss"  # measured fastest here, and the most accurate against brute force
    api_key: str = ""  # empty: the admin routes are disabled
    max_body_bytes: int = 64 * 1024
    candidates: int = 100
    log_queue_size: int = 10_000
    reload_poll_seconds: float = 2.0  # how often a worker checks whether another worker reloaded


def get_settings() -> Settings:
    """A fresh settings object (tests override the dependency)."""
    return Settings()

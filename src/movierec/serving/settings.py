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
    # a registry address (models:/movierec@champion) to serve instead of bundle_dir; the bundle is
    # downloaded into model_cache_dir. The store: tracking_uri, else MLFLOW_TRACKING_URI, else
    # the project's embedded mlflow/mlflow.db
    model_uri: str = ""
    model_cache_dir: Path = Path("data/serving/models")
    tracking_uri: str = ""
    registered_model: str = "movierec"  # the name /admin/reload's alias or version refers to
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

"""Where runs and model versions are kept: the project's embedded MLflow store, or a server.

Without ``MLFLOW_TRACKING_URI`` the store is ``mlflow/mlflow.db`` (SQLite) with artifacts under
``mlflow/artifacts`` in the project (ignored by git); ``make mlflow`` opens the UI on it. With
``MLFLOW_TRACKING_URI=http://host:5000`` every run and version goes to that server instead.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from movierec.paths import ProjectPaths

if TYPE_CHECKING:
    from mlflow import MlflowClient

ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(paths: ProjectPaths) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store (an absolute URI)."""
    configured = os.environ.get(ENV, "").strip()
    if configured:
        return configured
    return f"sqlite:///{(paths.mlflow / 'mlflow.db').resolve()}"


def is_embedded(paths: ProjectPaths) -> bool:
    """True when runs go to the project's own store (no server configured)."""
    return not os.environ.get(ENV, "").strip()


def client(paths: ProjectPaths) -> MlflowClient:
    """An MLflow client on this project's store (creating the embedded store if needed)."""
    from mlflow import MlflowClient

    # MLflow logs its database migrations at INFO on every new store: not the user's business
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if is_embedded(paths):
        paths.mlflow.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(paths)  # explicit: mlflow.set_tracking_uri would also set the environment
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client: MlflowClient, paths: ProjectPaths, name: str) -> str:
    """The experiment ``name``'s id, creating it (artifacts under ``mlflow/artifacts`` when embedded)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (paths.mlflow / "artifacts").resolve().as_uri() if is_embedded(paths) else None
    return mlflow_client.create_experiment(name, artifact_location=location)

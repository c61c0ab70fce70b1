"""Where runs and model versions are kept: the project's embedded MLflow store, or a server.

Without ``MLFLOW_TRACKING_URI`` the store is ``mlflow/mlflow.db`` (SQLite) with artifacts under
``mlflow/artifacts`` in the project (ignored by git); ``make mlflow`` opens the UI on it. With
``MLFLOW_TRACKING_URI=http://host:5000`` every run and version goes to that server instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from movierec.errors import MovierecError
from movierec.paths import ProjectPaths
from movierec.redact import redact, redact_in

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


class TrackingError(MovierecError):
    """The MLflow store or server refused or could not be reached."""


@contextlib.contextmanager
def speaking_errors(paths: ProjectPaths) -> Iterator[None]:
    """Turn MLflow's exceptions into one line that names the store (the CLI prints it)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        where = "the project's store (mlflow/)" if is_embedded(paths) else f"{ENV}={redact(tracking_uri(paths))}"
        message = redact_in(exc.message.splitlines()[0][:500], tracking_uri(paths))
        raise TrackingError(f"MLflow at {where}: {message}") from exc


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
        if found.lifecycle_stage == "deleted":  # deleted in the UI: bring it back rather than fail
            mlflow_client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = (paths.mlflow / "artifacts").resolve().as_uri() if is_embedded(paths) else None
    return mlflow_client.create_experiment(name, artifact_location=location)

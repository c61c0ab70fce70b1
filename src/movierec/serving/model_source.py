"""Bundles from the MLflow model registry: ``models:/movierec@champion`` to a local folder.

The service loads folders. A registry address (``MOVIEREC_MODEL_URI`` at start, or
``/admin/reload`` with an alias or a version) is resolved to one version, whose bundle is
downloaded once into ``MOVIEREC_MODEL_CACHE_DIR/<name>-v<version>`` (into a temporary folder
renamed on success, so a failed download leaves nothing) and then loaded and checked like
any other bundle. MLflow is imported only when a registry address is used.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from movierec.models.layout import MANIFEST
from movierec.redact import redact, redact_in

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


class RegistryUnavailable(RuntimeError):
    """The registry address is malformed, unknown, or the registry cannot be reached."""


@dataclass(frozen=True)
class Fetched:
    """A registered bundle on local disk."""

    path: Path
    name: str
    version: str
    uri: str


def model_uri(name: str, alias: str | None = None, version: int | None = None) -> str:
    """``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
    return f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"


def default_tracking_uri(configured: str = "") -> str:
    """``configured``, else ``MLFLOW_TRACKING_URI``, else the project's embedded store
    (``mlflow/mlflow.db`` under the working directory)."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{Path('mlflow/mlflow.db').resolve()}"


def fetch(uri: str, cache_dir: Path, tracking_uri: str = "") -> Fetched:
    """Resolve ``uri`` to one version and make sure its bundle is in ``cache_dir``.

    Raises:
        RegistryUnavailable: the address is not ``models:/name@alias`` or ``models:/name/N``,
            names no version, or the registry or its artifacts cannot be read.
    """
    match = _URI.match(uri.strip())
    if match is None:
        raise RegistryUnavailable(
            f"{uri!r} is not a registry address: use models:/<name>@<alias> or models:/<name>/<N>"
        )
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    name = match["name"]
    tracking = default_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    try:
        if match["alias"]:
            found = client.get_model_version_by_alias(name, match["alias"])
        else:
            found = client.get_model_version(name, match["version"])
    except MlflowException as exc:
        shown = redact(tracking)
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            first = redact_in(exc.message.splitlines()[0][:300], tracking)
            raise RegistryUnavailable(f"could not read {uri} from the registry at {shown}: {first}") from None
        what = f"alias {match['alias']!r}" if match["alias"] else f"version {match['version']}"
        raise RegistryUnavailable(f"registered model {name!r} has no {what} in {shown}") from None
    version = str(found.version)
    target = Path(cache_dir) / f"{name}-v{version}"
    if not (target / MANIFEST).exists():  # a version's files never change: download once
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            download_artifacts(artifact_uri=found.source, dst_path=str(staging), tracking_uri=tracking)
            downloaded = staging / Path(found.source.rstrip("/")).name
            source = downloaded if (downloaded / MANIFEST).exists() else staging
            if not (source / MANIFEST).exists():
                raise RegistryUnavailable(f"{name} version {version} holds no bundle manifest")
            try:
                source.rename(target)
            except OSError:  # another worker finished the same download first: use its copy
                if not (target / MANIFEST).exists():
                    raise
        except MlflowException as exc:
            first = redact_in(exc.message.splitlines()[0][:300], tracking)
            raise RegistryUnavailable(f"could not download {name} version {version}: {first}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Fetched(target, name, version, uri)

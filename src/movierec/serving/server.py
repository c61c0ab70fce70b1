"""``movierec serve``: check the bundle, then run uvicorn (one or several workers)."""

from __future__ import annotations

import os
import shutil
import tempfile

from movierec.errors import ParamsError
from movierec.models.bundle import check_manifest
from movierec.serving.auth import AuthConfigError, KeyRing
from movierec.serving.database import LOG_SCHEMA, log_file_of, move_legacy_request_log, prepare
from movierec.serving.settings import Settings, load_service_settings


def app_factory():  # uvicorn's factory hook
    """The application, for ``uvicorn --factory`` (each worker builds its own)."""
    from movierec.serving.app import create_app

    return create_app()


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "warning") -> None:
    """Refuse to start on a missing or corrupt bundle; otherwise serve until interrupted.

    With several workers, Prometheus multiprocess mode is switched on with a fresh
    ``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` adds up every worker.
    """
    os.environ["MOVIEREC_HOST"] = host  # the workers decide from it whether keys are required
    os.environ.pop("MOVIEREC_DATABASE_IDENTITY", None)
    os.environ.pop("MOVIEREC_REQUEST_LOG_IDENTITY", None)
    settings = load_service_settings()
    if not settings.model_uri:  # a registry address is fetched by each worker at start-up
        check_manifest(settings.bundle_dir)  # a clear start-up error instead of a half-loaded server
    try:
        KeyRing.parse(settings.api_keys, settings.api_key, settings.auth, host)
    except AuthConfigError as exc:
        raise ParamsError(str(exc)) from exc
    from movierec.serving.store import BundlePointer

    # Created (or upgraded) and proven writable once, here: a read-only or unusable file is a
    # one-line error instead of a traceback per worker; the workers (and any restarted later)
    # are pinned to this very file, so a file deleted while running is refused by all alike.
    os.environ["MOVIEREC_DATABASE_IDENTITY"] = prepare(settings.database_path, settings.database_timeout_seconds)
    os.environ["MOVIEREC_REQUEST_LOG_IDENTITY"] = prepare(
        log_file_of(settings.database_path), settings.database_timeout_seconds, LOG_SCHEMA
    )
    move_legacy_request_log(settings.database_path, settings.database_timeout_seconds)
    pointer = BundlePointer(settings.database_path, Settings())
    pointer.clear()  # a fresh start serves the configured bundle, not an earlier run's reload
    pointer.close()
    # One thread per library per worker: on a small machine BLAS, OpenMP (FAISS) and TensorFlow
    # thread pools otherwise spin against each other on tiny per-request matrices, which was
    # measured to halve the chain's throughput. Requests already run concurrently in threads.
    for name in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ.setdefault(name, "1")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="movierec-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    import uvicorn

    try:
        uvicorn.run(
            "movierec.serving.server:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)

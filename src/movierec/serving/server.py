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

# How long uvicorn's supervisor waits for a worker to answer its health-check ping before it
# kills and restarts it (uvicorn's default: 5 s). A worker answers from a thread, so it misses
# the ping only while something holds the GIL: loading a 1,000,000-item bundle does, for up to
# 9 s at a time (Arrow building the catalogue's Python lists), and with 5 s the workers were
# killed and restarted mid-load, forever (docs/index-benchmark.md).
WORKER_HEALTHCHECK_SECONDS = 60


def app_factory():  # uvicorn's factory hook
    """The application, for ``uvicorn --factory`` (each worker builds its own)."""
    from movierec.serving.app import create_app

    return create_app()


def prepare_storage_sqlite(settings: Settings) -> None:
    """Create (or upgrade) both SQLite files and prove them writable once, before any worker: a
    read-only or unusable file is a one-line error instead of a traceback per worker. The
    workers (and any restarted later) are pinned to these very files, so a file deleted while
    running is refused by all alike. A fresh start serves the configured bundle, not an earlier
    run's reload."""
    from movierec.serving.store import BundlePointer

    os.environ["MOVIEREC_DATABASE_IDENTITY"] = prepare(settings.database_path, settings.database_timeout_seconds)
    os.environ["MOVIEREC_REQUEST_LOG_IDENTITY"] = prepare(
        log_file_of(settings.database_path), settings.database_timeout_seconds, LOG_SCHEMA
    )
    move_legacy_request_log(settings.database_path, settings.database_timeout_seconds)
    pointer = BundlePointer(settings.database_path, Settings())
    pointer.clear()
    pointer.close()


def prepare_storage_postgres(settings: Settings) -> None:
    """Reach the PostgreSQL database, create or migrate its schema and prove a write works, before
    any worker: an unreachable server is a one-line error. The reload pointer is kept: a replica
    (re)started beside others follows their last reload (see ``ServiceState.follow_reloads``)."""
    from movierec.serving.postgres import prepare as prepare_postgres

    prepare_postgres(settings.database_url, settings.database_timeout_seconds)


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
    if settings.database_url:
        prepare_storage_postgres(settings)
    else:
        prepare_storage_sqlite(settings)
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
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)

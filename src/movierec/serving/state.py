"""The service's mutable state: the current recommender (swapped atomically), stores, metrics."""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movierec.serving.auth import KeyRing
from movierec.serving.metrics import ActiveUsers, set_bundle
from movierec.serving.model_source import Fetched, fetch, model_uri
from movierec.serving.reply_cache import ReplyCache
from movierec.serving.service import Recommender
from movierec.serving.settings import Settings
from movierec.serving.smoke import smoke_test as run_smoke_test
from movierec.serving.storage import Storage
from movierec.serving.store import BundlePointer, EventStore, RequestLog

log = logging.getLogger("movierec.serving")


def release_memory() -> None:
    """Collect garbage, hand freed heap pages back to the system (glibc's ``malloc_trim``), and
    freeze what remains out of the cyclic collector's reach.

    A replaced bundle frees a few hundred megabytes in many small blocks; without the trim
    glibc keeps most of them, and a worker's resident memory drifted up by about 10 % over
    a dozen reloads (measured on ML-100K) though nothing was still referenced.
    """
    gc.unfreeze()  # the previous bundle's objects, frozen at its swap, become collectable again
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
    # Everything alive now (the bundle, TensorFlow, the libraries) lives until the next swap:
    # frozen, the cyclic collector stops walking it on every full collection, which otherwise
    # paused a worker for tens of milliseconds now and then (the floor's p99 was 166 ms)
    gc.freeze()


@dataclass
class ServiceState:
    """What the routes share. ``recommender`` is None until a bundle is loaded."""

    settings: Settings
    events: EventStore
    log: RequestLog
    recommender: Recommender | None = None
    not_ready_reason: str | None = "starting"
    pointer: BundlePointer | None = None
    storage: Storage | None = None  # behind events, log and pointer (its health is /ready's)
    configured_version: str | None = None  # the bundle loaded from the configuration at start
    keys: KeyRing = field(default_factory=KeyRing)
    active: ActiveUsers = field(default_factory=ActiveUsers)
    replies: ReplyCache = field(default_factory=lambda: ReplyCache(0))  # off unless the app sizes it
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    failed_version: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _follower: threading.Thread | None = None

    def load(self, path: Any = None) -> Recommender:
        """Build a recommender from ``path`` (or the configured bundle); does not swap it in."""
        return Recommender(path or self.source()[0])

    def source(
        self, path: str | Path | None = None, alias: str | None = None, version: int | None = None
    ) -> tuple[Path, Fetched | None]:
        """The folder to load: ``path`` (a folder, or a registry address ``models:/...``); a
        registered version by ``alias`` or ``version`` (downloaded first); else
        ``MOVIEREC_MODEL_URI`` if set, else ``MOVIEREC_BUNDLE_DIR``.

        Raises:
            RegistryUnavailable: the registry address cannot be resolved or downloaded.
        """
        if alias is not None or version is not None:
            uri = model_uri(self.settings.registered_model, alias, version)
        elif isinstance(path, str) and path.startswith("models:/"):
            uri = path
        elif path is not None:
            return Path(path), None
        elif self.settings.model_uri:
            uri = self.settings.model_uri
        else:
            return Path(self.settings.bundle_dir), None
        fetched = fetch(uri, self.settings.model_cache_dir, self.settings.tracking_uri)
        return fetched.path, fetched

    def swap(self, new: Recommender) -> str | None:
        """Make ``new`` the current recommender; return the previous version."""
        previous = self.recommender.version if self.recommender is not None else None
        self.recommender = new  # one reference assignment: requests see the old or the new, never a mix
        self.not_ready_reason = None
        set_bundle(new.version, new.load_seconds, previous, getattr(new, "manifest", None))
        release_memory()  # the previous bundle's arrays, back to the system
        return previous

    def smoke_test(self, candidate: Recommender) -> None:
        """Queries every path of a freshly loaded bundle and checks its answers; raises if any fails.

        Beyond "every index and the ranker answer", each approximate index must agree with
        brute force and the ranker that serves with its SavedModel (see :mod:`movierec.serving.smoke`).

        Raises:
            SmokeTestFailed: naming the path that failed (and the overlap or the gap measured).
        """
        run_smoke_test(candidate)

    def pointed_source(self, path: Path, fetched: Fetched | None) -> str:
        """What the shared pointer records for a bundle loaded from ``path``: the registry
        address pinned to the version fetched (an alias may move before another replica reads
        it), else the folder's absolute path (which other hosts must see at that path too)."""
        if fetched is not None:
            return model_uri(fetched.name, None, int(fetched.version))
        return str(Path(path).resolve())

    def follow_reloads(self, interval: float) -> threading.Thread:
        """Poll the shared bundle pointer; when another worker reloaded, load and swap too.

        With several workers (or replicas sharing PostgreSQL) an admin reload reaches one
        process; it validates the bundle, swaps it in and records it in the database. Every
        other worker sees the new pointer within ``interval`` seconds and does the same
        (fetching from the registry when the pointer is a registry address, loading, smoke
        test, swap), so all workers converge on the reloaded bundle, each keeping its old one
        on failure. A worker whose configured bundle differs from the reloading worker's (a
        new deployment next to the old one) keeps its own.
        """

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sync_with_pointer()
                except Exception as exc:  # a poller must never die
                    log.error("following a reload failed: %s", exc)

        thread = threading.Thread(target=run, name="reload-follower", daemon=True)
        thread.start()
        self._follower = thread
        return thread

    def sync_with_pointer(self) -> bool:
        """Load the pointed-to bundle if it differs from the current one; True when swapped."""
        target = self.pointer.get() if self.pointer is not None else None
        current = self.recommender.version if self.recommender is not None else None
        if target is None or target.version in (current, self.failed_version):
            return False
        if target.base is not None and self.configured_version not in (None, target.base):
            return False  # a reload made under another configuration (see follow_reloads)
        with self.reload_lock:
            try:
                path, _ = self.source(target.source)
                candidate = self.load(path)
                self.smoke_test(candidate)
            except Exception as exc:  # keep serving the current bundle
                self.failed_version = target.version
                log.error("bundle %s from %s not loaded: %s", target.version, target.source, exc)
                return False
            self.swap(candidate)
        return True

    def unready_reason(self) -> str | None:
        """Why the service cannot serve every request now (no bundle, a database problem), or None."""
        if self.recommender is None:
            return self.not_ready_reason or "no bundle loaded"
        return self.storage.health() if self.storage is not None else None

    def stop(self) -> None:
        """Stop the reload follower (and wait for a load it is doing, at most 30 s)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=30)

    @property
    def uptime(self) -> float:
        """Seconds since the current recommender was loaded."""
        return time.time() - self.recommender.loaded_at if self.recommender else 0.0

"""Loading SavedModels, with loaded ones reused when a bundle part's content is unchanged.

TensorFlow keeps a few megabytes of every ``tf.saved_model.load`` for the life of the
process (its function library and op registrations are never freed; measured about
0.6 MB for the two towers, 0.9 MB for ScaNN per load on ML-100K, known upstream as a slow
leak). A service that reloads its bundle would grow with every reload, so loads are made
through :func:`load_signature`: inside :func:`reuse`, a folder whose content digest (from
the bundle's checked manifest) matches one already loaded gets that loaded function back
instead of a new load. Only the functions of the two most recently used bundles are kept,
so the cache is bounded; a new bundle with new content is loaded (and costs TensorFlow's
few megabytes) as before.
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tensorflow as tf

KEEP_BUNDLES = 2  # the bundles whose functions stay loaded: the current one and the one before
_digests: contextvars.ContextVar[Mapping[Path, str] | None] = contextvars.ContextVar(
    "saved_model_digests", default=None
)
_loaded: OrderedDict[str, Any] = OrderedDict()  # digest -> serving signature
_bundles: OrderedDict[frozenset[str], None] = OrderedDict()  # recently used bundles' digest sets
_lock = threading.Lock()


@contextmanager
def reuse(root: Path, parts: Mapping[str, str]) -> Iterator[None]:
    """Within this block, SavedModels under ``root`` whose part digest (``parts``: relative
    path -> content digest, as checked against the files) is already loaded are reused."""
    mapping = {(Path(root) / part).resolve(): digest for part, digest in parts.items()}
    token = _digests.set(mapping)
    try:
        yield
    finally:
        _digests.reset(token)
    _keep(set(mapping.values()))  # only after a load that succeeded: a failed one evicts nothing


def _keep(digests: set[str]) -> None:
    """Mark a bundle as used and drop the functions no recent bundle refers to."""
    with _lock:
        key = frozenset(digests)
        _bundles.pop(key, None)
        _bundles[key] = None
        while len(_bundles) > KEEP_BUNDLES:
            _bundles.popitem(last=False)
        wanted = set().union(*_bundles) if _bundles else set()
        for key in [k for k in _loaded if k.split(":", 1)[0] not in wanted]:
            del _loaded[key]


def load_signature(directory: Path, name: str = "serving_default") -> Any:
    """``tf.saved_model.load(directory).signatures[name]``, reused when the folder's content
    digest is known (see :func:`reuse`) and was loaded before."""
    directory = Path(directory)
    mapping = _digests.get()
    digest = mapping.get(directory.resolve()) if mapping else None
    if digest is None:
        return tf.saved_model.load(str(directory)).signatures[name]
    key = f"{digest}:{name}"
    with _lock:
        hit = _loaded.get(key)
    if hit is not None:
        return hit
    function = tf.saved_model.load(str(directory)).signatures[name]
    with _lock:
        _loaded[key] = function
    return function

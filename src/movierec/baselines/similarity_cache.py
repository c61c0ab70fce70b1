"""Item-kNN similarity matrices kept on disk between stages, found by a digest of their inputs.

Several stages fit the same item-kNN similarities on the same events: the baselines on
the training part and on training plus validation, then the tuning, both trainings, the
ablation and the global report for their ranking contexts. At ML-25M's size one such pass
costs 3.5 to 9 minutes on a 2-core machine, and the pipeline made eleven of them for two
distinct inputs. A stage that runs inside :func:`kept_in` stores each matrix it computes
under ``<directory>/<digest>.npz``, and any later fit with the same inputs loads it.

The digest covers everything the result depends on: the interaction matrix's shape,
indices, pointers and values, the fit's parameters, and :data:`ALGORITHM` (raise it when
the computation changes). A hit therefore returns the very matrix the fit would have
computed, so the cache changes no output; it is not a pipeline output either, and can be
deleted at any time. Files are written to a temporary name and renamed, so a stopped
stage or two writers at once never leave a partial file; an unreadable file is computed
again. Only the :data:`KEEP` most recently used files stay.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from movierec.io import atomic_file

ALGORITHM = "item-knn-cosine-v1"
KEEP = 8

_directory: Path | None = None


@contextmanager
def kept_in(directory: Path | None) -> Iterator[None]:
    """Within the block, item-kNN fits read and write their similarities under ``directory``
    (None: neither)."""
    global _directory
    previous, _directory = _directory, (Path(directory) if directory is not None else None)
    try:
        yield
    finally:
        _directory = previous


def kept_or_computed(matrix: sp.csr_matrix, compute: Callable[[], sp.csr_matrix], **params: object) -> sp.csr_matrix:
    """The item-by-item similarities of ``matrix`` for ``params``: read when kept, else
    ``compute()``d and kept (computed alone outside :func:`kept_in`)."""
    if _directory is None:
        return compute()
    key = digest(matrix, **params)
    n = matrix.shape[1]
    kept = load(key, (n, n))
    if kept is None:
        kept = compute()
        store(key, kept)
    return kept


def digest(matrix: sp.csr_matrix, **params: object) -> str:
    """Hex digest of a CSR matrix's exact content and the fit's parameters."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{ALGORITHM}|{matrix.shape}|{sorted(params.items())}|".encode())
    for array in (matrix.indptr, matrix.indices, matrix.data):
        h.update(str(array.dtype).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def load(key: str, shape: tuple[int, int]) -> sp.csr_matrix | None:
    """The kept matrix for ``key``, or None (no cache in use, none kept, or unreadable)."""
    if _directory is None:
        return None
    path = _directory / f"{key}.npz"
    try:
        with np.load(path) as parts:
            matrix = sp.csr_matrix(
                (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(int(v) for v in parts["shape"])
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        print(f"item-kNN cache: {path} is unreadable ({exc}); computing it again", file=sys.stderr)
        return None
    if matrix.shape != shape:
        return None
    os.utime(path)  # recently used: kept by the pruning
    print(f"item-kNN similarities {shape} read from {path}", file=sys.stderr)
    return matrix


def store(key: str, matrix: sp.csr_matrix) -> None:
    """Keep ``matrix`` under ``key`` (atomically), then drop all but the newest :data:`KEEP`."""
    if _directory is None:
        return
    with atomic_file(_directory / f"{key}.npz", "wb") as handle:
        np.savez(
            handle,
            data=matrix.data,
            indices=matrix.indices,
            indptr=matrix.indptr,
            shape=np.asarray(matrix.shape, np.int64),
        )
    kept = sorted(_directory.glob("*.npz"), key=_mtime, reverse=True)
    for old in kept[KEEP:]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    """A file's modification time; 0 for one another process removed meanwhile."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0

"""A training stage as one worker of several: its strategy, and where it may write.

When ``TF_CONFIG`` names several workers (see :mod:`movierec.orchestration.cluster`), every
worker runs the whole stage with the same settings, inputs and seeds; the collective
operations of training keep them in step. TensorFlow's rule for multi-worker saving is that
every worker saves (saving may read variables through collectives) but only the chief's copy
is kept. So the chief writes the stage's outputs where they belong, and each other worker
writes the same outputs into a scratch folder of its own that is removed when the stage
ends, whether it succeeded or not. Without ``TF_CONFIG`` nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from movierec.orchestration.cluster import role_from_env
from movierec.paths import ProjectPaths

SCRATCH_ENV = "MOVIEREC_WORKER_SCRATCH"
"""Where a non-chief worker makes its scratch folder (default: the system's temporary folder)."""


@contextlib.contextmanager
def worker_layout(paths: ProjectPaths, outputs: tuple[str, ...]) -> Iterator[tuple[Any, ProjectPaths]]:
    """The strategy this process trains with and the layout it writes to.

    Call it first in a training stage: the multi-worker strategy must exist before any
    other TensorFlow operation runs in the process.

    Args:
        paths: the project layout.
        outputs: the :class:`ProjectPaths` fields the stage writes under.

    Yields:
        ``(None, paths)`` on one worker; ``(strategy, paths)`` on the chief; on any other
        worker ``(strategy, paths with outputs moved into a scratch folder)``.
    """
    role = role_from_env()
    if role is None:
        yield None, paths
        return
    from movierec.models.distribute import strategy_from_env

    strategy = strategy_from_env()
    where = "writes the outputs"
    if not role.chief:
        base = os.environ.get(SCRATCH_ENV) or None
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"movierec-worker{role.index}-", dir=base))
        where = f"writes into {scratch} (removed at the end)"
    print(
        f"{role.label}{' (chief)' if role.chief else ''}, pid {os.getpid()}, "
        f"{strategy.num_replicas_in_sync} replicas in sync: {where}",
        file=sys.stderr,
        flush=True,
    )
    if role.chief:
        yield strategy, paths
        return
    try:
        yield strategy, dataclasses.replace(paths, **{name: scratch / name for name in outputs})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

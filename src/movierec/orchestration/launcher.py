"""Starting the workers of a training cluster, streaming their logs, and stopping them all
when one fails.

Each worker is the same command with its own ``TF_CONFIG`` (see
:mod:`movierec.orchestration.cluster`), started in a process group of its own. Their output
is copied line by line to the launcher's stderr behind a ``[worker I]`` prefix, and the last
lines of each are kept: when a worker exits with an error (or is killed), the others are
stopped at once, since they would wait for it forever at their next collective operation,
and :class:`WorkerFailed` names the worker, how it ended and its last lines.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from movierec.errors import MovierecError
from movierec.orchestration.cluster import TF_CONFIG, tf_config

TAIL_LINES = 20
STOP_GRACE_S = 10.0


class WorkerFailed(MovierecError):
    """A worker of a training cluster failed; the other workers were stopped."""

    def __init__(self, index: int, address: str, how: str, tail: list[str]):
        self.index, self.address, self.how, self.tail = index, address, how, tail
        lines = "\n".join(f"  {line}" for line in tail) or "  (no output)"
        super().__init__(
            f"worker {index} ({address}) {how}; the other workers were stopped and no output was kept. "
            f"Its last {len(tail)} lines:\n{lines}"
        )


@dataclass
class Worker:
    """One started worker process and what it printed last."""

    index: int
    address: str
    process: subprocess.Popen
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None

    def how_it_ended(self) -> str:
        """``exited with status N`` or ``was killed by SIGNAME``."""
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"


def _copy_lines(worker: Worker, stream: IO[bytes], out: IO[str], lock: threading.Lock) -> None:
    """Copy ``stream`` to ``out`` line by line behind the worker's prefix (a carriage return,
    as progress bars write, ends a line too), keeping the last lines."""
    pending = b""
    prefix = f"[worker {worker.index}] "
    for chunk in iter(lambda: stream.read1(65536), b""):
        pending += chunk.replace(b"\r", b"\n")
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                worker.tail.append(line)
                with lock:
                    out.write(prefix + line + "\n")
                    out.flush()
    if pending.strip():
        line = pending.decode("utf-8", "replace").rstrip()
        worker.tail.append(line)
        with lock:
            out.write(prefix + line + "\n")
            out.flush()


def launch(
    command: list[str],
    addresses: list[str],
    local: list[int] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log: IO[str] | None = None,
    poll_s: float = 0.2,
) -> list[int]:
    """Run ``command`` once per local worker of the cluster ``addresses`` and wait for all.

    Args:
        command: the worker's command line (the same for every worker).
        addresses: every worker's ``host:port``, worker 0 (the chief) first.
        local: the indices of the workers to start here (default: all of them, the
            one-machine case; on several hosts each host starts its own).
        env: the workers' environment (default: this process's); each also gets its
            ``TF_CONFIG`` and unbuffered Python output, and workers other than the chief
            run without progress bars.
        cwd: the workers' working directory.
        log: where their prefixed output goes (default: stderr).
        poll_s: how often the workers are checked.

    Returns:
        The indices of the workers that ran here, all of which succeeded.

    Raises:
        WorkerFailed: a worker exited with an error or was killed (the first one seen).
    """
    indices = list(range(len(addresses))) if local is None else list(local)
    log = log if log is not None else sys.stderr
    base = dict(os.environ if env is None else env)
    lock = threading.Lock()
    workers: list[Worker] = []
    try:
        for index in indices:
            worker_env = {**base, TF_CONFIG: tf_config(addresses, index), "PYTHONUNBUFFERED": "1"}
            if index != 0:
                worker_env.setdefault("TQDM_DISABLE", "1")
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=worker_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
            worker = Worker(index, addresses[index], process)
            assert process.stdout is not None
            worker.reader = threading.Thread(target=_copy_lines, args=(worker, process.stdout, log, lock), daemon=True)
            worker.reader.start()
            workers.append(worker)
        while True:
            failed = next((w for w in workers if w.process.poll() not in (None, 0)), None)
            if failed is not None:
                _stop(w for w in workers if w is not failed)
                _join(workers)
                raise WorkerFailed(failed.index, failed.address, failed.how_it_ended(), list(failed.tail))
            if all(w.process.returncode == 0 for w in workers):
                _join(workers)
                return indices
            time.sleep(poll_s)
    finally:
        _stop(workers)  # on any way out (an error here, Ctrl-C): no worker is left running


def _stop(workers: Iterable[Worker]) -> None:
    """SIGTERM each running worker's process group, then SIGKILL what is left after a grace period."""
    running = [w for w in workers if w.process.poll() is None]
    for worker in running:
        _signal_group(worker.process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(worker.process, signal.SIGKILL)
            worker.process.wait()


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _join(workers: list[Worker]) -> None:
    """Wait for the log readers to copy the workers' last lines."""
    for worker in workers:
        if worker.reader is not None:
            worker.reader.join(timeout=5)

"""A training cluster described the way TensorFlow reads it: ``TF_CONFIG``, addresses, roles.

TensorFlow's multi-worker strategies read the cluster from the ``TF_CONFIG`` environment
variable, a JSON object naming every worker's ``host:port`` and this process's place among
them::

    {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
     "task": {"type": "worker", "index": 0}}

Worker 0 is the chief (the one that writes outputs) unless the cluster names a ``chief``
task. Nothing here imports TensorFlow, so the launcher and the CLI stay light; the strategy
itself is built in :mod:`movierec.models.distribute`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from movierec.errors import ParamsError

TF_CONFIG = "TF_CONFIG"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Role:
    """This process's place in a training cluster."""

    index: int
    workers: int
    chief: bool

    @property
    def label(self) -> str:
        """``worker I of N`` for messages."""
        return f"worker {self.index} of {self.workers}"


def tf_config(addresses: list[str], index: int) -> str:
    """The ``TF_CONFIG`` value for worker ``index`` of a cluster of ``addresses`` (``host:port``).

    Raises:
        ParamsError: ``index`` is not one of the workers, or an address is malformed.
    """
    for address in addresses:
        parse_address(address)
    if not 0 <= index < len(addresses):
        raise ParamsError(f"worker index {index} is outside the cluster of {len(addresses)} workers")
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def role_from_env(environ: Mapping[str, str] | None = None) -> Role | None:
    """This process's role from ``TF_CONFIG``; None when it is unset or names one worker only.

    Raises:
        ParamsError: ``TF_CONFIG`` is not the JSON TensorFlow expects.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster = config["cluster"]
        task_type = str(config["task"]["type"])
        index = int(config["task"]["index"])
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParamsError(
            f"{TF_CONFIG} is not a TensorFlow cluster description ({exc}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}'
        ) from None
    if task_type not in ("chief", "worker"):
        raise ParamsError(f"{TF_CONFIG} task type {task_type!r}: only 'chief' and 'worker' tasks train here")
    size = len(chiefs) + len(workers)
    if size <= 1:
        return None
    # the chief task, when there is one, counts as worker 0 and the workers follow it
    position = index if task_type == "chief" else len(chiefs) + index
    chief = task_type == "chief" or (not chiefs and index == 0)
    return Role(index=position, workers=size, chief=chief)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) as ``(host, port)``.

    Raises:
        ParamsError: no port, or a port outside 1-65535.
    """
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParamsError(f"worker address {address!r} is not host:port (e.g. 10.0.0.1:2222)")
    return host, int(port)


def parse_hosts(text: str, default_port: int = 2222) -> list[str]:
    """A comma-separated host list as ``host:port`` addresses (``default_port`` where none is given).

    Raises:
        ParamsError: the list is empty, an entry is malformed, or an address repeats.
    """
    addresses = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        bare = entry.count(":") == 0 or (entry.startswith("[") and entry.endswith("]"))
        address = f"{entry}:{default_port}" if bare else entry
        parse_address(address)
        addresses.append(address)
    if not addresses:
        raise ParamsError(f"no worker addresses in {text!r}; give host[:port],host[:port],...")
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise ParamsError(f"worker addresses repeat: {', '.join(repeated)}")
    return addresses


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that are free on ``host`` now (held open together while picked,
    so none is handed out twice; another program may still take one before a worker binds it)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def loopback_cluster(workers: int) -> list[str]:
    """Addresses for ``workers`` processes on this machine (loopback, free ports).

    Raises:
        ParamsError: fewer than one worker.
    """
    if workers < 1:
        raise ParamsError(f"--workers must be at least 1 (got {workers})")
    return [f"{LOOPBACK}:{port}" for port in free_ports(workers)]


def per_replica_batch(global_batch: int, replicas: int, setting: str = "batch_size") -> int:
    """The batch each replica trains on when ``global_batch`` is split over ``replicas``.

    ``params.yaml``'s batch sizes are global: one optimiser step sees that many examples
    whatever the number of workers, so results do not depend on the cluster's size.

    Raises:
        ParamsError: the global batch does not split evenly over the replicas.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if global_batch % replicas:
        lower = global_batch - global_batch % replicas
        near = f"{lower} or {lower + replicas}" if lower else f"{replicas}"
        raise ParamsError(
            f"{setting} {global_batch} (the global batch) does not split evenly over {replicas} replicas; "
            f"use a multiple of {replicas}, e.g. {near}"
        )
    return global_batch // replicas

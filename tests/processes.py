"""Helpers for tests that start real servers: free loopback ports, waiting, stopping process groups."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def stop_process_group(process: subprocess.Popen) -> int:
    """SIGTERM to a server's process group (uvicorn stops its workers), SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


def monitoring_binary(name: str, package: str) -> str:
    """A Debian monitoring binary (prometheus, promtool, the Pushgateway): skips the test without it,
    or fails it under ``MOVIEREC_REQUIRE_PROMETHEUS`` (CI), where it must run."""
    binary = shutil.which(name)
    if binary is None:
        if os.environ.get("MOVIEREC_REQUIRE_PROMETHEUS"):
            pytest.fail(f"{name} is not installed (make test installs it: apt-get install {package})")
        pytest.skip(f"{name} is not installed; `make test` installs it (Debian package {package})")
    return binary

"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, one cluster on a free loopback port.

``initdb`` into a temporary folder, ``pg_ctl start`` on 127.0.0.1 only, trust authentication
for the one superuser ``movierec``, and no fsync (a throwaway cluster gains nothing from
durability and pays seconds for it). PostgreSQL refuses to run as root, so under root (CI on
a fresh Debian machine) the cluster belongs to the ``postgres`` user that the Debian package
creates, and its commands run through ``runuser``. Never for serving: use a real server.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "movierec"


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on the PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
    )
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """One running cluster; :meth:`new_database` makes a fresh database in it; :meth:`stop` deletes it all.

    Args:
        bin_dir: the folder of ``initdb`` and ``pg_ctl`` (see :func:`postgres_bin`).

    Raises:
        RuntimeError: ``initdb`` or ``pg_ctl`` failed (with their output and the server's log).
    """

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = _free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        # in the system's temporary folder: a test's own folder (mode 0700) would keep the postgres user out
        self.root = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self.owner:
            entry = pwd.getpwnam(self.owner)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}\n{log}")

    def url(self, database: str = "postgres") -> str:
        """A connection URL for ``database`` (no password: trust on loopback)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit) and return its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> tuple[str, str]:
        """``(name, url)`` of a fresh, empty database."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return name, self.url(name)

    def stop(self) -> None:
        """Stop the server at once and delete the cluster."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

"""A counter in shared memory that every worker advances after it commits feedback.

Each request reads the user's feedback, and most of the time nothing changed since the
worker last read it. Asking SQLite whether anything changed (``PRAGMA data_version``)
costs a read transaction with its file locks, and measured about an eighth of a cached
reply's throughput. Instead, every worker maps one small file beside the database and
reads its 8-byte counter, a memory read; a worker that commits feedback advances the
counter right after the commit, under a file lock so no increment is lost.

Why a reader that saw counter ``c`` and then read the database is never stale: every commit
whose increment produced a value up to ``c`` finished before the reader looked at the
counter, so the reader's query (a fresh snapshot, begun after that) sees it. A commit
after that moves the counter past ``c``, and the next request reads again.

Only the service writes feedback (:meth:`~movierec.serving.store.EventStore.add`); a
database replaced under a running service refuses writes (``Database.check_file``), so the
counter is the whole story. A worker killed between its commit and its increment leaves
the other workers on the old items until the next feedback anywhere, a window of a few
microseconds.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

from movierec.serving.database import StoreUnavailable

_SIZE = 8
_FORMAT = "<Q"


def clock_file_of(database: Path) -> Path:
    """The counter's file for the service database ``database``: ``NAME-feedback.clock`` beside it."""
    database = Path(database)
    return database.with_name(f"{database.stem}-feedback.clock")


class ChangeClock:
    """The feedback counter shared by every worker using ``path``.

    Raises:
        StoreUnavailable: the file cannot be created, sized or mapped (with the reason).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the feedback change counter {self.path}: {exc}") from exc
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)  # zeros: a new counter starts at 0
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, _SIZE)
        except OSError as exc:
            os.close(self._fd)
            raise StoreUnavailable(f"cannot map the feedback change counter {self.path}: {exc}") from exc

    def now(self) -> int:
        """The counter's value (a read of shared memory)."""
        return struct.unpack_from(_FORMAT, self._map, 0)[0]

    def advance(self) -> int:
        """Add one, after a commit of feedback; returns the new value."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)  # workers advancing at once: no increment lost
        try:
            value = (self.now() + 1) % (1 << 64)
            struct.pack_into(_FORMAT, self._map, 0, value)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        return value

    def close(self) -> None:
        """Unmap the counter and close its file."""
        self._map.close()
        os.close(self._fd)

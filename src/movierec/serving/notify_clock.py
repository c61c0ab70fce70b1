"""The feedback change signals of the PostgreSQL backend: a query per request, or LISTEN/NOTIFY.

:class:`EveryRequest` (``MOVIEREC_FEEDBACK_SIGNAL=query``, the default) answers "unknown"
to every request, so ``EventStore.items_of`` reads the user's feedback each time: one
indexed query, and feedback committed through any replica is in the very next answer.

:class:`NotifyClock` (``MOVIEREC_FEEDBACK_SIGNAL=notify``) spares that query while nothing
changed, at the price of a short window, measured below.

Every feedback insert sends ``NOTIFY movierec_feedback`` in its transaction; PostgreSQL
delivers it at commit to every connection listening on the channel, on any host. Each
worker keeps one such connection, read by a background thread that adds one to a local
counter per notification. ``EventStore.items_of`` asks :meth:`NotifyClock.now` on every
request (a few microseconds: no query) and reads the user's feedback again only when
the value moved.

What keeps an answer from being stale:

- PostgreSQL signals the listening sessions while committing, before the writer's client
  hears that the commit succeeded, so by the time feedback's 201 reaches a client the
  notification is on its way to every worker;
- :meth:`NotifyClock.now` answers None ("read the database") while a notification is
  waiting unread on the listening socket or being counted, so a worker never answers from
  its memo with a delivered but uncounted notification;
- while the listening connection is down (server restart, network), :meth:`now` answers
  None for every request, and after reconnecting the counter moves once, since
  notifications sent meanwhile were lost.

The window left is a notification still travelling from the server to the worker's
socket when the next request is read there: the client's whole round trip (the 201 back,
the next request out) has to beat one message on an established connection, and on a busy
machine the listening server process may not run at once. Measured on the 2-core test
machine while other jobs loaded it (``python -m movierec.serving.bench_storage``): a read made
in another worker right after ``add`` returned missed the event 3 times in 200 at load
average 5 (seen within 3.7 ms) and 45 times in 200 at load average 9.5 (p99 15 ms, worst
70 ms); two replicas over HTTP with keep-alive clients answered 2 of 40 next requests
without the feedback just posted through the other (load average about 9). Hence not the
default. It also needs LISTEN, which PgBouncer in transaction mode does not carry.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import Any

import psycopg

from movierec.redact import redact

log = logging.getLogger("movierec.serving")
CHANNEL = "movierec_feedback"
HEARTBEAT_SECONDS = 5.0  # an idle listening connection is checked this often (a dead one shows then)
RECONNECT_SECONDS = 1.0


class EveryRequest:
    """No memo: every request reads the database (``MOVIEREC_FEEDBACK_SIGNAL=query``, the default)."""

    def now(self) -> int | None:
        """Always unknown."""
        return None

    def advance(self) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Nothing to release."""


class NotifyClock:
    """Counts feedback commits announced on :data:`CHANNEL` (see the module docstring).

    Args:
        url: the PostgreSQL database.
        kwargs: connection settings (see :func:`~movierec.serving.postgres.connect_kwargs`).
        heartbeat: seconds between checks of an idle connection.
    """

    def __init__(self, url: str, kwargs: dict[str, Any], heartbeat: float = HEARTBEAT_SECONDS):
        self.url = url
        self.kwargs = {**kwargs, "autocommit": True}
        self.heartbeat = heartbeat
        self._count = 0
        self._count_lock = threading.Lock()
        self._fd = -1  # the listening socket, -1 while there is none
        self._busy = True  # counting (or not listening): now() answers None
        self._local = threading.local()  # per request thread: a poll object on the socket
        self._stop = threading.Event()
        self._wake_read, self._wake_write = os.pipe()  # close() writes here to end the listener's wait
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="feedback-listener", daemon=True)
        self._thread.start()

    @property
    def listening(self) -> bool:
        """Whether the listening connection is up."""
        return self._fd >= 0

    def now(self) -> int | None:
        """The counter, or None while a notification may be unread or nobody listens.

        The flags are read before the counter: a notification counted in between moves the
        value this call returns, so the caller reads the database rather than its memo.
        """
        fd = self._fd
        if fd < 0 or self._busy:
            return None
        poller = getattr(self._local, "poller", None)
        if poller is None or self._local.fd != fd:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            self._local.poller, self._local.fd = poller, fd
        try:
            if poller.poll(0):  # bytes waiting: a notification (or a heartbeat's answer) not yet read
                return None
        except OSError:
            return None
        return self._count

    def advance(self) -> None:
        """Move the counter for this process's own commit (its notification comes later too)."""
        self._bump(1)

    def _bump(self, n: int) -> None:
        with self._count_lock:
            self._count += n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # a listener must never die: it reconnects
                if not self._stop.is_set():
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                    log.warning(
                        "feedback listener on %s lost (%s); reading per request meanwhile", redact(self.url), first
                    )
            finally:
                self._busy, self._fd = True, -1
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        conn = self._conn = psycopg.connect(self.url, **self.kwargs)
        conn.execute(f"LISTEN {CHANNEL}")
        self._bump(1)  # whatever was committed while nobody listened: read again
        self._fd = conn.fileno()
        self._busy = False
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while not self._stop.is_set():
            ready = poller.poll(self.heartbeat * 1000)
            if self._stop.is_set():
                return
            self._busy = True
            try:
                if not ready:
                    conn.execute("SELECT 1")  # a dead connection raises here; notifications meanwhile are kept
                self._bump(sum(1 for _ in conn.notifies(timeout=0)))
            finally:
                self._busy = False

    def close(self) -> None:
        """Stop listening and wait for the thread (a second call does nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=self.heartbeat + 2)
        os.close(self._wake_read)
        os.close(self._wake_write)

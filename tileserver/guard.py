"""Database guard: fail fast while the database is down, and a client-side query deadline."""

from __future__ import annotations

import itertools
import logging
import math
import socket
import threading
import time
from typing import Any

from tileserver.errors import Unavailable

log = logging.getLogger(__name__)

#: libpq options of every serving connection: a bounded connect, TCP keepalives so a dead peer
#: is noticed within about a minute, and a bound on unacknowledged writes (milliseconds).
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}

#: What clients are told; the driver's own message names hosts and ports.
DOWN_DETAIL = "the database is unavailable; try again shortly"


class DatabaseDown(Unavailable):
    """The database failed recently; requests that need it are refused until a retry is due."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(DOWN_DETAIL)
        self.retry_after = max(1, math.ceil(retry_after))


class Breaker:
    """After a connection failure, refuse database work for ``cooldown`` seconds.

    A hung or stopped database then costs each request nothing instead of a thread for the
    connect timeout; after the cooldown the next request tries again, and its success closes
    the breaker, so the server recovers by itself.
    """

    def __init__(self, cooldown: float = 2.0) -> None:
        self.cooldown = cooldown
        self.failures = 0
        self._open_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """Whether the last database call failed."""
        return self._down

    def check(self) -> None:
        """Raise DatabaseDown while the breaker is open."""
        remaining = self._open_until - time.monotonic()
        if remaining > 0:
            raise DatabaseDown(remaining)

    def failed(self, exc: BaseException) -> None:
        """Open the breaker after ``exc`` (a connection-level failure)."""
        with self._lock:
            self.failures += 1
            self._open_until = time.monotonic() + self.cooldown
            if not self._down:
                log.warning("database unavailable: %s", str(exc).strip())
            self._down = True

    def succeeded(self) -> None:
        """Close the breaker."""
        if self._down:
            with self._lock:
                if self._down:
                    log.warning("database available again")
                self._down = False
                self._open_until = 0.0


class Deadlines:
    """Cuts the socket of a connection whose call outlives its deadline.

    ``statement_timeout`` is enforced by the server: a hung or stopped server never sends it,
    and TCP keepalives are answered by its kernel. Shutting the socket down makes libpq's
    blocking read fail at once, so the thread is freed and the connection discarded.
    """

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._watched: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Connections cut so far.
        self.cut = 0

    def watch(self, fileno: int, seconds: float) -> int:
        """Watch the socket ``fileno`` for ``seconds``; returns a token for :meth:`release`."""
        token = next(self._ids)
        with self._lock:
            self._watched[token] = (time.monotonic() + seconds, fileno)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="fondplan-db-deadlines", daemon=True
                )
                self._thread.start()
        return token

    def release(self, token: int) -> None:
        """Stop watching."""
        with self._lock:
            self._watched.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                late = [token for token, (due, _) in self._watched.items() if due <= now]
                for token in late:
                    _, fileno = self._watched.pop(token)
                    self._cut(fileno)

    def _cut(self, fileno: int) -> None:
        try:
            # A duplicate of the descriptor: shutting it down affects the shared socket, and
            # closing the duplicate leaves libpq's own descriptor valid.
            sock = socket.socket(fileno=socket.dup(fileno))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
            self.cut += 1
            log.warning("a database call outlived its deadline: connection cut")
        except OSError:
            pass
        finally:
            sock.close()

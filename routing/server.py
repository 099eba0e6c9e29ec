"""One routing server per ``fondplan serve``: the engines built once, answering every worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from osmimport.children import term_on_parent_death
from osmimport.database import database_url
from osmimport.settings import DatabaseSettings
from routing import store
from routing.network import data_version
from routing.prefetch import Prefetch
from routing.settings import RoutingSettings

if TYPE_CHECKING:
    from routing.service import RoutingService

log = logging.getLogger(__name__)

#: SO_PEERCRED's answer: process, user and group id.
PEER = struct.Struct("3i")
#: A frame's header: the length of the JSON request that follows.
REQUEST = struct.Struct(">I")
#: An answer's header: the HTTP status and the length of the body that follows.
ANSWER = struct.Struct(">HI")
#: The answer beyond the queue's bound.
QUEUE_FULL = b'{"code":"ServiceUnavailable","message":"too many routing requests; try again"}'
#: Seconds a data version no worker names any more stays loaded (workers switch within
#: their tile version check, seconds apart).
KEEP_UNNAMED = 60.0
#: Seconds between two checks for versions to drop and for the parent process.
HOUSEKEEPING = 2.0

#: The data version the current request is answered for (the service follows it).
_VERSION: ContextVar[str] = ContextVar("routing_server_version", default="")


def encode_request(request: dict[str, Any]) -> bytes:
    """A request as one frame."""
    body = orjson.dumps(request)
    return REQUEST.pack(len(body)) + body


def encode_answer(status: int, body: bytes) -> bytes:
    """An answer as one frame."""
    return ANSWER.pack(status, len(body)) + body


class RoutingServer:
    """The routing service of every data version a worker names, behind a Unix socket.

    Each request names the data version its worker serves; the engines of a version are
    loaded when a worker prepares it (its tile switch) or first names it, and dropped once no
    worker has named it for :data:`KEEP_UNNAMED` seconds and a newer one is prepared. Queries
    run on a few threads; at most ``routing_server_queue`` at once, beyond that 503.
    """

    def __init__(self, service: RoutingService, settings: RoutingSettings) -> None:
        self.service = service
        self.settings = settings
        self._threads = ThreadPoolExecutor(
            max(1, settings.routing_server_threads), thread_name_prefix="fondplan-route"
        )
        # Loading runs apart, so routes of the loaded version keep being answered meanwhile.
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="fondplan-routing-load")
        self._named: dict[str, float] = {}
        self._newest: str | None = None
        self._queued: set[str] = set()
        #: Queries taken, by the process id of the worker that sent them.
        self.clients: dict[int, int] = {}
        self.pending = 0
        self.answered = 0
        self.rejected = 0

    # -- requests ---------------------------------------------------------------------------

    async def handle(self, request: dict[str, Any]) -> tuple[int, bytes]:
        """The status and body answering one request."""
        op = request.get("op")
        version = str(request.get("version", ""))
        self._named[version] = time.monotonic()
        loop = asyncio.get_running_loop()
        if op == "query":
            if self.pending >= self.settings.routing_server_queue:
                self.rejected += 1
                return 503, QUEUE_FULL
            self.pending += 1
            try:
                return await loop.run_in_executor(self._threads, self._query, request)
            finally:
                self.pending -= 1
                self.answered += 1
        if op == "prepare":
            loading = loop.run_in_executor(self._loader, self._prepare, version)
            if request.get("wait"):
                await loading
            return 200, orjson.dumps(self.health(version))
        if op == "health":
            # A new server (after a restart) loads what the workers serve without waiting.
            if version not in self.service.loaded_versions() and version not in self._queued:
                self._queued.add(version)
                loop.run_in_executor(self._loader, self._prepare, version)
            return 200, orjson.dumps(self.health(version))
        return 400, orjson.dumps({"code": "InvalidQuery", "message": f"unknown op {op!r}"})

    def _query(self, request: dict[str, Any]) -> tuple[int, bytes]:
        from routing.http import answer

        token = _VERSION.set(str(request["version"]))
        try:
            query = [(str(k), str(v)) for k, v in request["query"]]
            return answer(
                self.service,
                str(request["method"]),
                str(request["profile"]),
                str(request["coordinates"]),
                query,
            )
        finally:
            _VERSION.reset(token)

    def _prepare(self, version: str) -> None:
        token = _VERSION.set(version)
        try:
            self.service.load_version(version)
        finally:
            _VERSION.reset(token)
            self._queued.discard(version)
        self._newest = version

    def health(self, version: str) -> dict[str, Any]:
        """The service's state for ``version`` and the server's own."""
        token = _VERSION.set(version)
        try:
            state = self.service.health()
        finally:
            _VERSION.reset(token)
        state["server"] = {
            "pid": os.getpid(),
            "pending": self.pending,
            "answered": self.answered,
            "rejected": self.rejected,
            "versions": sorted(self.service.loaded_versions()),
            "clients": {str(pid): count for pid, count in self.clients.items()},
        }
        return state

    def housekeeping(self) -> None:
        """Drop the versions no worker names any more (on the loading thread: it waits for
        the service's lock)."""
        now = time.monotonic()
        keep = {v for v, seen in self._named.items() if now - seen < KEEP_UNNAMED}
        if self._newest is not None:
            keep.add(self._newest)
        dropped = self.service.loaded_versions() - keep
        if dropped:
            log.info("routing server: dropping data versions %s", ", ".join(sorted(dropped)))
            asyncio.get_running_loop().run_in_executor(self._loader, self.service.retain, keep)
        for version in set(self._named) - keep:
            del self._named[version]
        for pid in [pid for pid in self.clients if not _alive(pid)]:
            del self.clients[pid]

    def preload(self) -> None:
        """Load the version the database serves now, before any worker asks."""
        try:
            version = data_version(self.service.url)
        except Exception as exc:  # the database unreachable: workers name the version later
            log.warning("routing server: nothing loaded at start: %s", exc)
            return
        self._prepare(version)

    # -- the socket -------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_pid(writer)
        try:
            while True:
                (size,) = REQUEST.unpack(await reader.readexactly(REQUEST.size))
                request = orjson.loads(await reader.readexactly(size))
                if request.get("op") == "query":
                    self.clients[peer] = self.clients.get(peer, 0) + 1
                status, body = await self.handle(request)
                writer.write(encode_answer(status, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # A worker gone, or this server stopping.
            pass
        except Exception:
            log.exception("routing server: a connection failed")
        finally:
            writer.close()

    async def serve(
        self, path: Path, parent: int | None = None, listening: socket.socket | None = None
    ) -> None:
        """Answer on the socket ``path`` (``listening`` on it already when given) until
        SIGTERM (or ``parent`` is gone)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if listening is None:
            listening = listen(path)
        server = await asyncio.start_unix_server(self._connection, sock=listening)
        log.info("routing server %d listening on %s", os.getpid(), path)
        loop.run_in_executor(self._loader, self.preload)
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), HOUSEKEEPING)
                except TimeoutError:
                    pass
                if parent is not None and os.getppid() != parent:
                    log.warning("routing server: its parent %d is gone: stopping", parent)
                    break
                if self._newest is not None:
                    self.housekeeping()
        finally:
            server.close()
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the folder made for it, when serve itself is killed
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._loader.shutdown(wait=False, cancel_futures=True)


def listen(path: Path) -> socket.socket:
    """A Unix socket listening at ``path``: connections wait in its backlog until served."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(socket.SOMAXCONN)
    return sock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _peer_pid(writer: asyncio.StreamWriter) -> int:
    """The process id at the other end of a Unix socket connection (0 if unknown)."""
    sock = writer.get_extra_info("socket")
    try:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size)
    except (OSError, AttributeError):
        return 0
    pid: int = PEER.unpack(credentials)[0]
    return pid


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m routing.server SOCKET [PARENT_PID]``, the settings as JSON on stdin."""
    args = list(sys.argv[1:] if argv is None else argv)
    parent = int(args[1]) if len(args) > 1 else None
    if parent is not None:
        term_on_parent_death()
        if os.getppid() != parent:
            return 0
    # Ctrl+C reaches the whole process group: the serve command stops this server itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    # The serve command's settings, as JSON on stdin.
    given = orjson.loads(sys.stdin.buffer.read())
    database = DatabaseSettings.model_validate(given["database"])
    routing = RoutingSettings.model_validate(given["routing"])
    # Listening first: `fondplan serve` starts its workers once it is, and the requests they
    # send meanwhile wait in the backlog. Then the fetch, then the engine's libraries (seconds).
    listening = listen(Path(args[0]))
    prefetch = _prefetch(database)
    from routing.service import RoutingService

    service = RoutingService(
        lambda: database_url(database), routing, follow=_VERSION.get, data_dir=database.data_dir
    )
    if prefetch is not None:
        service.prefetch(prefetch.version, prefetch)
    asyncio.run(RoutingServer(service, routing).serve(Path(args[0]), parent, listening))
    return 0


def _prefetch(database: DatabaseSettings) -> Prefetch | None:
    """The routing data of the version the database serves now, fetched into the file cache
    by a child process (None when the database cannot say which)."""
    from routing.profiles import PROFILES

    try:
        url = database_url(database)
        version = data_version(url)
    except Exception as exc:  # the database unreachable: loaded when a worker names a version
        log.warning("routing server: nothing fetched at start: %s", exc)
        return None
    cache = store.cache_root(database.data_dir, url)
    return Prefetch(url, version, list(PROFILES), cache)


class RoutingServerProcess:
    """The routing server of a ``fondplan serve``, restarted when it dies, stopped with it.

    Started from a thread of the serve command that lives as long as it serves: the server
    gets SIGTERM when that thread's process dies (``kill -9`` included).
    """

    def __init__(self, database: DatabaseSettings, routing: RoutingSettings) -> None:
        # A short path: a socket's must fit in 108 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="fondplan-routing-"))
        self.path = self._dir / "routing.sock"
        sections = {"database": database, "routing": routing}
        self._settings = orjson.dumps({k: v.model_dump(mode="json") for k, v in sections.items()})
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The server's process id now (None between a death and its restart)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (and its keeper thread) and wait until it listens (it loads the
        engines afterwards)."""
        self._thread = threading.Thread(
            target=self._keep, name="fondplan-routing-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.path))
                    return
                except OSError:
                    time.sleep(0.05)
        log.warning("the routing server does not listen on %s yet", self.path)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "routing.server", str(self.path), str(os.getpid())]
        process = subprocess.Popen(command, stdin=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(self._settings)
        process.stdin.close()
        return process

    def _keep(self) -> None:
        self._process = self._spawn()
        while not self._stop.wait(0.5):
            code = self._process.poll()
            if code is None:
                continue
            self.restarts += 1
            log.warning("the routing server exited (%s): starting a new one", code)
            self._process = self._spawn()
        process = self._process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def stop(self) -> None:
        """Stop the server and remove its socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(20)
        shutil.rmtree(self._dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

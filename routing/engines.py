"""One process per routing profile: its engines, by data version, behind a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from osmimport.children import term_on_parent_death
from osmimport.errors import FondplanError
from routing.client import RoutingClient
from routing.frames import connection_handler, listen
from routing.settings import RoutingSettings

if TYPE_CHECKING:
    from routing.service import RoutingService

log = logging.getLogger(__name__)

#: The data version the current request is answered for (the service follows it).
_VERSION: ContextVar[str] = ContextVar("routing_engine_version", default="")
#: Seconds an engine process has to exit once told to, before SIGTERM, then SIGKILL.
STOP_WAIT = 2.0
#: Numbers the sockets of the engine processes of one routing server.
_SERIAL = itertools.count(1)
#: Engine processes are forked by a server process that has imported the engine's libraries
#: and compiled its kernels once (some 85 MB of their own per process otherwise, and seconds
#: of start-up, tens with numba's disk cache cold): they start at once and share those pages.
_CONTEXT = multiprocessing.get_context("forkserver")
PRELOAD = ["routing.service", "routing.http", "routing.engines", "routing.preforked"]


def start_forkserver() -> None:
    """Start the process the engine processes are forked from (blocks while it imports)."""
    _CONTEXT.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()


def _start(process: multiprocessing.process.BaseProcess) -> None:
    start_forkserver()
    process.start()


class EngineServer:
    """The engines of one profile, in a process of their own: a CCH build here holds the GIL
    of this process only, so the other profiles' processes keep answering.

    The routing server sends commands on ``commands``, one JSON message each: ``load`` a data
    version (with ``shared``: only when its CCH is that of a version loaded here, a change of
    weights, else it answers ``different`` and the routing server starts a new process),
    ``retain`` some versions. Each load is answered on ``events``. Queries come on the socket;
    the end of ``commands`` (the routing server gone or stopping this process) ends it.
    """

    def __init__(
        self,
        service: RoutingService,
        profile: str,
        threads: int,
        commands: Connection,
        events: Connection,
    ) -> None:
        self.service = service
        self.profile = profile
        self._commands = commands
        self._events = events
        self._threads = ThreadPoolExecutor(max(1, threads), thread_name_prefix="fondplan-route")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="fondplan-routing-load")

    async def handle(self, request: dict[str, Any], peer: int) -> tuple[int, bytes]:
        """The answer of one query."""
        if request.get("op") != "query":
            return 400, orjson.dumps({"code": "InvalidQuery", "message": "queries only"})
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._query, request)

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

    def load(self, version: str, shared: bool) -> dict[str, Any]:
        """Load ``version`` (only if its CCH is shared, when ``shared``): the event to report."""
        began = time.perf_counter()
        try:
            if shared and not self.service.shares_topology(self.profile, version):
                return {"version": version, "state": "different"}
            engine = self.service.load_profile(self.profile, version)
        except FondplanError as exc:
            return {"version": version, "state": "unavailable", "error": str(exc)}
        return {
            "version": version,
            "state": "loaded",
            "edges": len(engine.edges),
            "arcs": len(engine.arrays["turn_next"]) if "turn_next" in engine.arrays else 0,
            "cch": engine.cch_state,
            "seconds": round(time.perf_counter() - began, 2),
        }

    async def _follow(self) -> None:
        """Follow the routing server's commands until they end."""
        loop = asyncio.get_running_loop()
        async for message in _messages(self._commands):
            command = orjson.loads(message)
            version = str(command.get("version", ""))
            if command["op"] == "load":
                job = loop.run_in_executor(
                    self._loader, self.load, version, bool(command.get("shared"))
                )
                job.add_done_callback(
                    lambda done: self._events.send_bytes(orjson.dumps(done.result()))
                )
            elif command["op"] == "retain":
                keep = {str(v) for v in command["versions"]}
                loop.run_in_executor(self._loader, partial(self.service.retain, keep, prune=False))

    async def serve(self, listening: Any) -> None:
        """Answer on ``listening`` until the commands end (SIGTERM keeps its default action:
        it ends the process at once, even while a CCH build holds the GIL)."""
        server = await asyncio.start_unix_server(connection_handler(self.handle), sock=listening)
        try:
            await self._follow()
        finally:
            server.close()


async def _messages(connection: Connection) -> AsyncIterator[bytes]:
    """The messages arriving on ``connection``, read on the event loop, until its end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    fd = connection.fileno()

    def readable() -> None:
        try:
            queue.put_nowait(connection.recv_bytes())
        except (EOFError, OSError):
            loop.remove_reader(fd)
            queue.put_nowait(None)

    loop.add_reader(fd, readable)
    try:
        while (message := await queue.get()) is not None:
            yield message
    finally:
        loop.remove_reader(fd)


def run(path: str, profile: str, setup: bytes, commands: Connection, events: Connection) -> None:
    """An engine process (forked by the forkserver): ``setup`` holds the database URL, the
    data folder and the routing settings."""
    # The forkserver's objects, shared with it, are left out of collections: a collection
    # writes to every object it visits, which would copy their pages into this process.
    gc.freeze()
    term_on_parent_death()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    given = orjson.loads(setup)
    socket_path = Path(path)
    listening = listen(socket_path)
    from routing.service import RoutingService

    settings = RoutingSettings.model_validate(given["routing"])
    data_dir = Path(given["data_dir"]) if given["data_dir"] else None
    service = RoutingService(given["url"], settings, follow=_VERSION.get, data_dir=data_dir)
    server = EngineServer(service, profile, settings.routing_server_threads, commands, events)
    try:
        asyncio.run(server.serve(listening))
    finally:
        socket_path.unlink(missing_ok=True)
    # Not waiting for a load under way: its thread is lost with the process.
    os._exit(0)


class EngineProcess:
    """An engine process of profile ``name``, seen from the routing server that started it.

    ``versions`` holds the state of each data version it has been asked to load: ``loading``,
    ``loaded`` (with its edges, arcs and whether the CCH is shared) or ``unavailable``.
    """

    def __init__(self, name: str, folder: Path, setup: bytes, settings: RoutingSettings) -> None:
        self.name = name
        self.path = folder / f"{name}-{next(_SERIAL)}.sock"
        self.versions: dict[str, dict[str, Any]] = {}
        self.client = RoutingClient(self.path, settings)
        #: When it last answered, and the queries it answers now.
        self.used = time.monotonic()
        self.active = 0
        self._setup = setup
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._process: multiprocessing.process.BaseProcess | None = None
        self._commands: Connection | None = None
        self._follower: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The process id (None before its start)."""
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.is_alive()

    def loaded(self, version: str) -> bool:
        """Whether ``version`` answers here."""
        return self.versions.get(version, {}).get("state") == "loaded"

    async def start(self) -> None:
        """Start the process (forked by the forkserver, started first when needed)."""
        commands, self._commands = _CONTEXT.Pipe(duplex=False)
        events, answers = _CONTEXT.Pipe(duplex=False)
        process = _CONTEXT.Process(
            target=run,
            args=(str(self.path), self.name, self._setup, commands, answers),
            name=f"fondplan-routing-{self.name}",
            daemon=True,
        )
        await asyncio.get_running_loop().run_in_executor(None, _start, process)
        self._process = process
        commands.close()
        answers.close()
        self._follower = asyncio.ensure_future(self._follow(events))

    def _send(self, command: dict[str, Any]) -> None:
        if self._commands is not None and not self._commands.closed:
            with contextlib.suppress(OSError):
                self._commands.send_bytes(orjson.dumps(command))

    async def _follow(self, events: Connection) -> None:
        async for message in _messages(events):
            event: dict[str, Any] = orjson.loads(message)
            version = str(event.pop("version"))
            if event["state"] == "different":
                self.versions.pop(version, None)
            elif version in self.versions:
                self.versions[version] = event
            waiting = self._waiting.pop(version, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(event)
        events.close()
        assert self._process is not None
        await asyncio.get_running_loop().run_in_executor(None, self._process.join, STOP_WAIT)
        code = self._process.exitcode
        if code not in (0, -signal.SIGTERM, None):
            log.warning("routing: the %s engine process %d exited (%s)", self.name, self.pid, code)
        self.versions = {}
        gone = {"state": "unavailable", "error": f"the {self.name} engine process exited"}
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_result(gone)
        self._waiting = {}

    async def load(self, version: str, *, shared: bool = False) -> dict[str, Any]:
        """Have the process load ``version`` (only if its CCH is shared, when ``shared``): the
        event that ends it (``loaded``, ``unavailable`` or ``different``)."""
        if not self.alive:
            return {"state": "unavailable", "error": f"the {self.name} engine process exited"}
        self.versions[version] = {"state": "loading"}
        waiting = self._waiting.get(version)
        if waiting is None:
            waiting = self._waiting[version] = asyncio.get_running_loop().create_future()
            self._send({"op": "load", "version": version, "shared": shared})
        return await asyncio.shield(waiting)

    def retain(self, keep: set[str]) -> None:
        """Drop the engines of the versions not in ``keep`` (those loading stay)."""
        keep = keep | {v for v, s in self.versions.items() if s["state"] == "loading"}
        if set(self.versions) <= keep:
            return
        self.versions = {v: s for v, s in self.versions.items() if v in keep}
        self._send({"op": "retain", "versions": sorted(keep)})

    async def answer(self, request: dict[str, Any]) -> tuple[int, bytes]:
        """The answer of the process to a query."""
        self.active += 1
        try:
            return await self.client.answer(
                str(request["version"]),
                str(request["method"]),
                str(request["profile"]),
                str(request["coordinates"]),
                [(str(k), str(v)) for k, v in request["query"]],
            )
        finally:
            self.active -= 1
            self.used = time.monotonic()

    async def stop(self) -> None:
        """Stop the process: its commands ended, then SIGTERM, then SIGKILL."""
        process = self._process
        if process is None:
            return
        if self._commands is not None:
            self._commands.close()
        loop = asyncio.get_running_loop()
        for escalate in (process.terminate, process.kill):
            await loop.run_in_executor(None, process.join, STOP_WAIT)
            if process.exitcode is not None:
                break
            with contextlib.suppress(OSError):
                escalate()
        await loop.run_in_executor(None, process.join, STOP_WAIT)
        if self._follower is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._follower, STOP_WAIT)
        self.path.unlink(missing_ok=True)

    def pss_mb(self) -> float | None:
        """The process's proportional set size in MiB (None when unknown)."""
        try:
            text = Path(f"/proc/{self.pid}/smaps_rollup").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) / 1024, 1)
        return None

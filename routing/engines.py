"""The engine process of the routing server: the engines of every profile, by data version,
behind a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import partial
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from osmimport.children import term_on_parent_death
from osmimport.errors import FondplanError
from routing.client import RoutingClient
from routing.frames import connection_handler, listen
from routing.profiles import PROFILES
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
#: The engine process is a fresh interpreter (not fork: the routing server has threads; not
#: multiprocessing's spawn, which keeps a resource tracker process beside it). One process
#: holds every profile: a process per profile held an interpreter, numba and its compiled
#: kernels each (some 100 MB), and a forkserver to share them held them once more.


class EngineServer:
    """The engines of every profile, in the routing server's engine process.

    The routing server sends commands on ``commands``, one JSON message each: ``load`` a
    profile's data version (with ``shared``: only when its CCH is that of a version loaded
    here, a change of weights, else it answers ``different`` and the routing server starts a
    new process), ``retain`` some versions of a profile (none: the profile leaves this
    process). Each load is answered on ``events``. Queries come on the socket; the end of
    ``commands`` (the routing server gone or stopping this process) ends it. Each profile
    loads in a thread of its own: a profile waiting for its data does not hold up the others,
    and the kernels of a route release the GIL.
    """

    def __init__(
        self, service: RoutingService, threads: int, commands: Connection, events: Connection
    ) -> None:
        self.service = service
        self._commands = commands
        self._events = events
        self._threads = ThreadPoolExecutor(
            max(1, threads) * len(PROFILES), thread_name_prefix="fondplan-route"
        )
        self._loaders: dict[str, ThreadPoolExecutor] = {}

    def _loader(self, profile: str) -> ThreadPoolExecutor:
        """The thread a profile's loads and drops run in, one after the other."""
        if profile not in self._loaders:
            self._loaders[profile] = ThreadPoolExecutor(
                1, thread_name_prefix=f"fondplan-routing-load-{profile}"
            )
        return self._loaders[profile]

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

    def load(self, profile: str, version: str, shared: bool) -> dict[str, Any]:
        """Load ``version`` of ``profile`` (only if its CCH is shared, when ``shared``): the
        event to report."""
        began = time.perf_counter()
        said = {"profile": profile, "version": version}
        try:
            if shared and not self.service.shares_topology(profile, version):
                return {**said, "state": "different"}
            engine = self.service.load_profile(profile, version)
        except FondplanError as exc:
            return {**said, "state": "unavailable", "error": str(exc)}
        finally:
            _give_back()
        return {
            **said,
            "state": "loaded",
            "edges": len(engine.edges),
            "arcs": len(engine.arrays["turn_next"]) if "turn_next" in engine.arrays else 0,
            "cch": engine.cch_state,
            "seconds": round(time.perf_counter() - began, 2),
        }

    def retain(self, profile: str, keep: set[str]) -> None:
        """Drop the engines of ``profile`` but those of ``keep``, their memory given back."""
        self.service.retain(keep, prune=False, profile=profile)
        _give_back()

    async def _follow(self) -> None:
        """Follow the routing server's commands until they end."""
        loop = asyncio.get_running_loop()
        async for message in _messages(self._commands):
            command = orjson.loads(message)
            profile = str(command["profile"])
            version = str(command.get("version", ""))
            if command["op"] == "load":
                job = loop.run_in_executor(
                    self._loader(profile), self.load, profile, version, bool(command.get("shared"))
                )
                job.add_done_callback(
                    lambda done: self._events.send_bytes(orjson.dumps(done.result()))
                )
            elif command["op"] == "retain":
                keep = {str(v) for v in command["versions"]}
                loop.run_in_executor(self._loader(profile), partial(self.retain, profile, keep))

    async def serve(self, listening: Any) -> None:
        """Answer on ``listening`` until the commands end (SIGTERM keeps its default action:
        it ends the process at once, even while a CCH build holds the GIL)."""
        server = await asyncio.start_unix_server(connection_handler(self.handle), sock=listening)
        try:
            await self._follow()
        finally:
            server.close()


def _give_back() -> None:
    """Return to the system the memory a load or a drop freed (the allocator keeps it
    otherwise): the working arrays of a load, the engines dropped."""
    from routing.engine import _release_freed

    gc.collect()
    _release_freed()


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


def main(argv: list[str] | None = None) -> int:
    """``python -m routing.engines SOCKET COMMANDS_FD EVENTS_FD``, the setup (the database URL,
    the data folder and the routing settings) as JSON on stdin: the engine process."""
    path, commands, events = sys.argv[1:] if argv is None else argv
    term_on_parent_death()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    given = orjson.loads(sys.stdin.buffer.read())
    socket_path = Path(path)
    listening = listen(socket_path)
    from routing.service import RoutingService

    # The modules' objects are left out of full collections (each would walk them all).
    gc.freeze()
    settings = RoutingSettings.model_validate(given["routing"])
    data_dir = Path(given["data_dir"]) if given["data_dir"] else None
    service = RoutingService(given["url"], settings, follow=_VERSION.get, data_dir=data_dir)
    server = EngineServer(
        service,
        settings.routing_server_threads,
        Connection(int(commands), writable=False),
        Connection(int(events), readable=False),
    )
    try:
        asyncio.run(server.serve(listening))
    finally:
        socket_path.unlink(missing_ok=True)
    # Not waiting for a load under way: its thread is lost with the process.
    os._exit(0)


def _join(process: subprocess.Popen[bytes]) -> None:
    """Wait up to STOP_WAIT seconds for ``process`` to exit."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_WAIT)


class EngineHost:
    """An engine process, seen from the routing server that started it: the profiles
    attached to it (an :class:`EngineProcess` each), at most one per profile."""

    def __init__(self, folder: Path, setup: bytes, settings: RoutingSettings) -> None:
        self.path = folder / f"engines-{next(_SERIAL)}.sock"
        self.client = RoutingClient(self.path, settings)
        #: The profiles attached, by name.
        self.profiles: dict[str, EngineProcess] = {}
        self._setup = setup
        self._process: subprocess.Popen[bytes] | None = None
        self._commands: Connection | None = None
        self._follower: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The process id (None before its start)."""
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def stopping(self) -> bool:
        """Whether the process is stopping or has stopped (no profile may be attached)."""
        return self._stopping or (self._process is not None and self._process.poll() is not None)

    def takes(self, name: str) -> bool:
        """Whether profile ``name`` may be attached: the process starts or runs, and holds
        no engine of that profile."""
        return not self.stopping and name not in self.profiles

    def attach(self, engine: EngineProcess) -> None:
        """Have ``engine``'s profile answered here."""
        assert self.takes(engine.name)
        self.profiles[engine.name] = engine

    def detach(self, engine: EngineProcess) -> bool:
        """Drop ``engine``'s profile from the process: whether none is left."""
        if self.profiles.get(engine.name) is engine:
            del self.profiles[engine.name]
            self.send({"op": "retain", "profile": engine.name, "versions": []})
        if not self.profiles:
            self._stopping = True
        return not self.profiles

    async def start(self) -> None:
        """Start the process, once."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        commands, self._commands = Pipe(duplex=False)
        events, answers = Pipe(duplex=False)
        ends = (commands.fileno(), answers.fileno())
        command = [sys.executable, "-m", "routing.engines", str(self.path), *map(str, ends)]

        def spawn() -> subprocess.Popen[bytes]:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=ends)
            assert process.stdin is not None
            process.stdin.write(self._setup)
            process.stdin.close()
            return process

        self._process = await asyncio.get_running_loop().run_in_executor(None, spawn)
        commands.close()
        answers.close()
        self._follower = asyncio.ensure_future(self._follow(events))

    def send(self, command: dict[str, Any]) -> None:
        """Send a command to the process."""
        if self._commands is not None and not self._commands.closed:
            with contextlib.suppress(OSError):
                self._commands.send_bytes(orjson.dumps(command))

    async def _follow(self, events: Connection) -> None:
        async for message in _messages(events):
            event: dict[str, Any] = orjson.loads(message)
            engine = self.profiles.get(str(event.pop("profile")))
            if engine is not None:
                engine.receive(event)
        events.close()
        assert self._process is not None
        await asyncio.get_running_loop().run_in_executor(None, _join, self._process)
        code = self._process.returncode
        if code not in (0, -signal.SIGTERM, None):
            log.warning("routing: the engine process %d exited (%s)", self.pid, code)
        for engine in list(self.profiles.values()):
            engine.lost()

    async def stop(self) -> None:
        """Stop the process: its commands ended, then SIGTERM, then SIGKILL."""
        self._stopping = True
        if self._starting is not None:
            # A start that failed or was cancelled has no process to stop.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._starting)
        process = self._process
        if process is None:
            return
        if self._commands is not None:
            self._commands.close()
        loop = asyncio.get_running_loop()
        for escalate in (process.terminate, process.kill):
            await loop.run_in_executor(None, _join, process)
            if process.returncode is not None:
                break
            with contextlib.suppress(OSError):
                escalate()
        await loop.run_in_executor(None, _join, process)
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


class EngineProcess:
    """Profile ``name`` in the engine process ``host``, seen from the routing server.

    ``versions`` holds the state of each data version it has been asked to load: ``loading``,
    ``loaded`` (with its edges, arcs and whether the CCH is shared) or ``unavailable``.
    """

    def __init__(self, name: str, host: EngineHost) -> None:
        self.name = name
        self.host = host
        self.versions: dict[str, dict[str, Any]] = {}
        #: When it last answered, and the queries it answers now.
        self.used = time.monotonic()
        self.active = 0
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._attached = True
        host.attach(self)

    @property
    def pid(self) -> int | None:
        """The id of its process (None before its start)."""
        return self.host.pid

    @property
    def alive(self) -> bool:
        """Whether the profile is in a running process."""
        return self._attached and self.host.alive

    def loaded(self, version: str) -> bool:
        """Whether ``version`` answers here."""
        return self.versions.get(version, {}).get("state") == "loaded"

    async def start(self) -> None:
        """Start its process, unless started already."""
        await self.host.start()

    def receive(self, event: dict[str, Any]) -> None:
        """An event of the process about this profile: a load ended."""
        version = str(event.pop("version"))
        if event["state"] == "different":
            self.versions.pop(version, None)
        elif version in self.versions:
            self.versions[version] = event
        waiting = self._waiting.pop(version, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(event)

    def lost(self) -> None:
        """Its process exited."""
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
            self.host.send(
                {"op": "load", "profile": self.name, "version": version, "shared": shared}
            )
        return await asyncio.shield(waiting)

    def retain(self, keep: set[str]) -> None:
        """Drop the engines of the versions not in ``keep`` (those loading stay)."""
        keep = keep | {v for v, s in self.versions.items() if s["state"] == "loading"}
        if set(self.versions) <= keep:
            return
        self.versions = {v: s for v, s in self.versions.items() if v in keep}
        self.host.send({"op": "retain", "profile": self.name, "versions": sorted(keep)})

    async def answer(self, request: dict[str, Any]) -> tuple[int, bytes]:
        """The answer of the process to a query."""
        self.active += 1
        try:
            return await self.host.client.answer(
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
        """Take the profile out of its process; the process stops when none is left."""
        if not self._attached:
            return
        self._attached = False
        self.lost()
        if self.host.detach(self):
            await self.host.stop()

    def pss_mb(self) -> float | None:
        """Its process's proportional set size in MiB (None when unknown)."""
        return self.host.pss_mb()


if __name__ == "__main__":
    raise SystemExit(main())

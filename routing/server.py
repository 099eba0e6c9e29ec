"""One routing server per ``fondplan serve``: it dispatches every worker's routes to the engine
process of their profile and data version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from osmimport.children import term_on_parent_death
from osmimport.database import database_url
from osmimport.settings import DatabaseSettings
from routing import store
from routing.engines import EngineHost, EngineProcess
from routing.errors import OsrmError
from routing.frames import connection_handler, listen
from routing.network import data_version
from routing.profiles import PROFILES, profile_name
from routing.settings import RoutingSettings

log = logging.getLogger(__name__)

#: The answer beyond the queue's bound.
QUEUE_FULL = b'{"code":"ServiceUnavailable","message":"too many routing requests; try again"}'
#: Seconds between two checks for versions and idle profiles to drop and for the parent.
HOUSEKEEPING = 2.0


class RoutingServer:
    """The engines of every data version a worker names, in an engine process, behind a Unix
    socket in ``folder``.

    Each request names the data version its worker serves; the profiles of a version are loaded
    when a worker prepares it (its tile switch) or first names it, side by side in one engine
    process (one interpreter and one set of compiled kernels for all). A new version whose turn
    graph is the loaded one's (a change of weights) is loaded where the profile's loaded
    version is, sharing its CCH; else in an engine process that holds none of that profile (a
    new one if need be), the old one answering meanwhile. A version no worker has named for
    ``routing_server_grace`` seconds is dropped once a newer one is prepared, and a process
    left with no profile exits, its memory given back whole. At most ``routing_server_queue``
    queries at once, beyond that 503.
    """

    def __init__(self, database: DatabaseSettings, settings: RoutingSettings, folder: Path) -> None:
        self.database = database
        self.settings = settings
        self.folder = folder
        self._url: str | None = None
        self.engines: list[EngineProcess] = []
        #: The engine processes the engines are in.
        self.hosts: list[EngineHost] = []
        self._loading: dict[tuple[str, str], asyncio.Task[EngineProcess | None]] = {}
        #: Why a profile of a version could not be loaded, and when, by (version, profile).
        self._errors: dict[tuple[str, str], tuple[str, float]] = {}
        self._named: dict[str, float] = {}
        #: The versions being prepared now, by how many preparations.
        self._preparing: dict[str, int] = {}
        self._newest: str | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        #: Queries taken, by the process id of the worker that sent them.
        self.clients: dict[int, int] = {}
        self.pending = 0
        self.answered = 0
        self.rejected = 0

    async def url(self) -> str:
        """The database URL (resolved once, away from the event loop: it may start the
        embedded cluster)."""
        if self._url is None:
            loop = asyncio.get_running_loop()
            self._url = await loop.run_in_executor(None, database_url, self.database)
        return self._url

    def _background(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests ---------------------------------------------------------------------------

    async def handle(self, request: dict[str, Any], peer: int) -> tuple[int, bytes]:
        """The status and body answering one request."""
        op = request.get("op")
        version = str(request.get("version", ""))
        self._named[version] = time.monotonic()
        if op == "query":
            self.clients[peer] = self.clients.get(peer, 0) + 1
            if self.pending >= self.settings.routing_server_queue:
                self.rejected += 1
                return 503, QUEUE_FULL
            self.pending += 1
            try:
                return await self._query(request)
            finally:
                self.pending -= 1
                self.answered += 1
                self._named[version] = time.monotonic()
        if op == "prepare":
            if request.get("wait"):
                await self.prepare(version)
            else:
                self._background(self.prepare(version))
            return 200, orjson.dumps(self.health(version))
        if op == "health":
            # A new server (after a restart) loads what the workers serve without waiting.
            if self.settings.routing_server_preload and not self._known(version):
                self._background(self.prepare(version))
            return 200, orjson.dumps(self.health(version))
        return 400, orjson.dumps({"code": "InvalidQuery", "message": f"unknown op {op!r}"})

    async def _query(self, request: dict[str, Any]) -> tuple[int, bytes]:
        try:
            name = profile_name(str(request.get("profile")))
        except OsrmError as exc:
            return 400, orjson.dumps({"code": exc.code, "message": exc.message})
        version = str(request.get("version", ""))
        engine = await self.engine(version, name)
        if engine is None:
            message, _ = self._errors.get((version, name), ("not loaded", 0.0))
            return 503, orjson.dumps({"code": "NoGraph", "message": message})
        return await engine.answer(request)

    def _known(self, version: str) -> bool:
        return any(version == v for v, _ in self._loading) or any(
            version in engine.versions for engine in self.engines
        )

    def _holder(self, version: str, name: str) -> EngineProcess | None:
        for engine in self.engines:
            if engine.name == name and version in engine.versions and engine.alive:
                return engine
        return None

    async def engine(self, version: str, name: str) -> EngineProcess | None:
        """The process answering profile ``name`` of ``version``, loaded now if needed (None
        when it cannot be: the reason in :attr:`_errors`, tried again after the reload
        interval)."""
        holder = self._holder(version, name)
        if holder is not None and holder.loaded(version):
            return holder
        key = (version, name)
        loading = self._loading.get(key)
        if loading is None:
            error = self._errors.get(key)
            retry = self.settings.routing_reload_interval
            if error is not None and time.monotonic() - error[1] < retry:
                return None
            loading = asyncio.ensure_future(self._load(version, name))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _load(self, version: str, name: str) -> EngineProcess | None:
        key = (version, name)
        self._errors.pop(key, None)
        # The newest process of the profile takes the version if its CCH is shared.
        current = [e for e in self.engines if e.name == name and e.alive and e.versions]
        if current:
            event = await current[-1].load(version, shared=True)
            if event["state"] == "loaded":
                return current[-1]
            if event["state"] == "unavailable":
                self._errors[key] = (str(event.get("error")), time.monotonic())
                return None
        engine = EngineProcess(name, self._host(name, await self._setup()))
        await engine.start()
        self.engines.append(engine)
        event = await engine.load(version)
        if event["state"] != "loaded":
            self._errors[key] = (str(event.get("error")), time.monotonic())
            log.warning("routing %s of %s: %s", name, version, event.get("error"))
            self.engines.remove(engine)
            await engine.stop()
            return None
        log.info(
            "routing %s of %s ready in %s s in process %s (CCH %s)",
            name,
            version,
            event.get("seconds"),
            engine.pid,
            event.get("cch"),
        )
        return engine

    async def _setup(self) -> bytes:
        """What an engine process is started with: the database URL, the data folder and
        the routing settings."""
        data_dir = self.database.data_dir
        return orjson.dumps(
            {
                "url": await self.url(),
                "data_dir": None if data_dir is None else str(data_dir),
                "routing": self.settings.model_dump(mode="json"),
            }
        )

    def _host(self, name: str, setup: bytes) -> EngineHost:
        """The engine process profile ``name`` is loaded in: the newest that holds none of
        it, else a new one (a new turn graph loads beside the version that answers now)."""
        for host in reversed(self.hosts):
            if host.takes(name):
                return host
        host = EngineHost(self.folder, setup, self.settings)
        self.hosts.append(host)
        return host

    async def prepare(self, version: str) -> None:
        """Get ``version`` ready: every profile (only those in use, when profiles load on
        first request)."""
        if self.settings.routing_server_preload:
            names = list(PROFILES)
        else:
            names = sorted({engine.name for engine in self.engines})
        self._preparing[version] = self._preparing.get(version, 0) + 1
        try:
            await asyncio.gather(*(self.engine(version, name) for name in names))
            self._newest = version
        finally:
            self._preparing[version] -= 1
            if not self._preparing[version]:
                del self._preparing[version]

    def health(self, version: str) -> dict[str, Any]:
        """Per profile the state of ``version``, and the server's own."""
        idle = not self.settings.routing_server_preload or self.settings.routing_server_idle > 0
        profiles: dict[str, Any] = {}
        for name in PROFILES:
            holder = self._holder(version, name)
            state = holder.versions[version] if holder is not None else {}
            loaded = state.get("state") == "loaded"
            entry: dict[str, Any] = {
                "data_version": version,
                "loaded": loaded,
                "edges": state.get("edges") if loaded else None,
            }
            error = self._errors.get((version, name))
            if loaded:
                entry["cch"] = state["cch"]
                entry["arcs"] = state["arcs"]
            elif state.get("state") == "loading" or (version, name) in self._loading:
                entry["state"] = "loading"
            elif error is not None:
                entry["state"] = "unavailable"
                entry["error"] = error[0]
            else:
                entry["state"] = "idle" if idle else "loading"
            profiles[name] = entry
        return {
            "ready": all(p["loaded"] or p.get("state") == "idle" for p in profiles.values()),
            "loading": bool(self._loading),
            "profiles": profiles,
            "server": {
                "pid": os.getpid(),
                "pending": self.pending,
                "answered": self.answered,
                "rejected": self.rejected,
                "versions": sorted({v for e in self.engines for v in e.versions if e.loaded(v)}),
                "engines": [
                    {
                        "profile": e.name,
                        "pid": e.pid,
                        "versions": sorted(e.versions),
                        "pss_mb": e.pss_mb(),
                    }
                    for e in self.engines
                ],
                "clients": {str(pid): count for pid, count in self.clients.items()},
            },
        }

    def housekeeping(self) -> None:
        """Drop the versions no worker names any more, and the processes left with none or
        idle for longer than ``routing_server_idle``."""
        now = time.monotonic()
        grace = self.settings.routing_server_grace
        keep = {v for v, seen in self._named.items() if now - seen < grace}
        keep |= set(self._preparing) | {v for v, _ in self._loading}
        if self._newest is not None:
            keep.add(self._newest)
        else:
            keep |= {v for e in self.engines for v in e.versions}
        for version in set(self._named) - keep:
            del self._named[version]
        idle = self.settings.routing_server_idle
        busy = {name for _, name in self._loading}
        for engine in list(self.engines):
            engine.retain(keep)
            unused = idle > 0 and now - engine.used > idle and not engine.active
            if not engine.alive or (engine.name not in busy and (not engine.versions or unused)):
                if engine.alive:
                    log.info(
                        "routing: the %s engine process %s stops (%s)",
                        engine.name,
                        engine.pid,
                        "idle" if engine.versions else "no version left",
                    )
                self.engines.remove(engine)
                self._background(engine.stop())
        self.hosts = [host for host in self.hosts if not host.stopping]
        if self._newest is not None and self.database.data_dir is not None and self._url:
            store.prune(store.cache_root(self.database.data_dir, self._url), keep)
        for pid in [pid for pid in self.clients if not _alive(pid)]:
            del self.clients[pid]

    async def preload(self) -> None:
        """Load the version the database serves now, before any worker asks."""
        if not self.settings.routing_server_preload:
            return
        loop = asyncio.get_running_loop()
        # The engine process starts (its interpreter and libraries) while the version is
        # looked up: the profiles then load in it.
        host = EngineHost(self.folder, await self._setup(), self.settings)
        self.hosts.append(host)
        self._background(host.start())
        try:
            version = await loop.run_in_executor(None, data_version, await self.url())
        except Exception as exc:  # the database unreachable: workers name the version later
            log.warning("routing server: nothing loaded at start: %s", exc)
            return
        await self.prepare(version)

    # -- the socket -------------------------------------------------------------------------

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
        server = await asyncio.start_unix_server(connection_handler(self.handle), sock=listening)
        log.info("routing server %d listening on %s", os.getpid(), path)
        self._background(self.preload())
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HOUSEKEEPING)
                if parent is not None and os.getppid() != parent:
                    log.warning("routing server: its parent %d is gone: stopping", parent)
                    break
                self.housekeeping()
        finally:
            server.close()
            path.unlink(missing_ok=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*(engine.stop() for engine in self.engines))
            await asyncio.gather(*(host.stop() for host in self.hosts))
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the folder made for it, when serve itself is killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    # Before the engines start: they inherit it (see RoutingServerProcess).
    if int(given.get("nice", 0)) > 0:
        os.nice(int(given["nice"]))
    # Listening first: `fondplan serve` starts its workers once it is, and the requests they
    # send meanwhile wait in the backlog.
    path = Path(args[0])
    listening = listen(path)
    asyncio.run(RoutingServer(database, routing, path.parent).serve(path, parent, listening))
    return 0


class RoutingServerProcess:
    """The routing server of a ``fondplan serve``, restarted when it dies, stopped with it.

    Started from a thread of the serve command that lives as long as it serves: the server
    gets SIGTERM when that thread's process dies (``kill -9`` included). ``nice`` is added to
    its niceness, and so to its engines': routes then yield the CPU to the server's cheaper
    answers (cached tiles) on a busy machine.
    """

    def __init__(self, database: DatabaseSettings, routing: RoutingSettings, nice: int = 0) -> None:
        # A short path: a socket's must fit in 108 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="fondplan-routing-"))
        self.path = self._dir / "routing.sock"
        sections = {"database": database, "routing": routing}
        given: dict[str, Any] = {k: v.model_dump(mode="json") for k, v in sections.items()}
        self._settings = orjson.dumps({**given, "nice": nice})
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

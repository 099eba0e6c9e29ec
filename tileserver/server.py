"""Process hygiene of ``fondplan serve``: header timeouts, the supervisor, loop stalls, GC."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

import anyio.to_thread
import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from osmimport.children import term_on_parent_death
from tileserver.settings import ServerSettings

log = logging.getLogger(__name__)

_header_timeout: float = ServerSettings.model_fields["header_timeout"].default


def set_header_timeout(seconds: float) -> None:
    """Set by the app factory from its settings (one app per server process)."""
    global _header_timeout
    _header_timeout = seconds


def header_timeout() -> float:
    """Seconds a connection may take to send a request's headers."""
    return _header_timeout


class _Answered:
    """The request cycle of an answer the protocol sent itself: complete from the start."""

    response_complete = True
    keep_alive = True


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that send no complete headers, and
    answering cached tiles itself.

    uvicorn closes idle keep-alive connections after a response, but not a connection that
    never completes a request (slowloris, or just opened and left idle).

    A request the app answers at once (its ``immediate(scope)``, a tile in memory) is answered
    as its headers arrive, in the same callback: no task, no ASGI round, no wait on the event
    loop behind the other requests' work. Only in the plain case: a keep-alive HTTP/1.1 GET or
    HEAD with no body, no request of the connection still being answered, and a client that
    reads its answers (else the regular way, which waits for it).
    """

    def on_headers_complete(self) -> None:
        """Answer at once when the app can, else start the ASGI request as uvicorn does."""
        if not self._answer_now():
            super().on_headers_complete()

    def _answer_now(self) -> bool:
        immediate = getattr(self.app, "immediate", None)
        if immediate is None or self.pipeline or self.flow.write_paused:
            return False
        limit = self.limit_concurrency
        if limit is not None and max(len(self.connections), len(self.tasks)) >= limit:
            # Over uvicorn's limit: its 503, as for any request.
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        parser = self.parser
        method = parser.get_method()
        if method not in (b"GET", b"HEAD") or parser.get_http_version() != "1.1":
            return False
        if not parser.should_keep_alive() or parser.should_upgrade() or self.root_path:
            return False
        for name, _ in self.headers:
            if name in (b"content-length", b"transfer-encoding", b"expect"):
                return False
        url = httptools.parse_url(self.url)
        if b"%" in url.path:
            return False
        scope = self.scope
        scope["method"] = method.decode("ascii")
        scope["path"] = url.path.decode("ascii")
        scope["raw_path"] = url.path
        scope["query_string"] = url.query or b""
        answer = immediate(scope)
        if answer is None:
            return False
        status, headers, body = answer
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        self.transport.writelines([b"".join(head), body] if body else [b"".join(head)])
        # The parser's callbacks for the rest of this request see a complete cycle.
        self.cycle = _Answered()  # type: ignore[assignment]
        self.on_response_complete()
        return True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock of the first request's headers."""
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        """Start the clock of the next request's headers."""
        super().on_response_complete()
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        waiting_for = self.cycle
        self.loop.call_later(header_timeout(), self._check_headers, waiting_for)

    def _check_headers(self, waiting_for: Any) -> None:
        # Still the same request cycle as when the clock started: no new headers arrived.
        if self.cycle is waiting_for and not self.transport.is_closing():
            if waiting_for is None or waiting_for.response_complete:
                self.transport.close()


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when ``parent_pid`` is gone (a ``kill -9`` of the supervisor).

    The kernel's parent-death signal where available, and a watchdog thread besides (the
    signal is tied to the parent's thread that started us, and misses a parent already gone).
    """
    term_on_parent_death()

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                log.warning("the server supervisor %s is gone: stopping", parent_pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            threading.Event().wait(1.0)

    threading.Thread(target=watch, name="fondplan-parent-watch", daemon=True).start()


def freeze_startup_objects() -> None:
    """Keep the objects made so far (modules, settings, the app) out of the garbage
    collector's full collections: each would otherwise walk them all, holding the GIL (about
    100 ms for the app's 180,000), a stall of every request in flight."""
    gc.collect()
    gc.freeze()


async def start_worker_threads(count: int) -> None:
    """Start ``count`` of the event loop's worker threads now, and keep them.

    The thread pool (anyio's) starts a thread when every one is busy, and the event loop waits
    for it to be running: on a busy machine, a wait for a CPU. A burst of uncached requests
    after a quiet while (anyio stops threads idle for 10 s) started tens of them at once, each
    such a wait, holding up the cached answers on the loop.
    """
    _keep_idle_worker_threads()
    barrier = threading.Barrier(count)

    def meet() -> None:
        # Every thread waits here until all have started: none is reused for another.
        barrier.wait(timeout=60)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(
                lambda: anyio.to_thread.run_sync(meet, limiter=anyio.CapacityLimiter(count))
            )


def _keep_idle_worker_threads() -> None:
    # anyio has no setting for it: its worker thread class's idle limit, where it is.
    from anyio._backends import _asyncio

    worker = getattr(_asyncio, "WorkerThread", None)
    if worker is not None and isinstance(getattr(worker, "MAX_IDLE_TIME", None), (int, float)):
        worker.MAX_IDLE_TIME = math.inf


def gc_gauges() -> dict[str, float]:
    """The garbage collector's collections by generation and its frozen objects, for /metrics."""
    out = {
        f'fondplan_gc_collections_total{{generation="{generation}"}}': float(stats["collections"])
        for generation, stats in enumerate(gc.get_stats())
    }
    out["fondplan_gc_frozen_objects"] = float(gc.get_freeze_count())
    return out


#: Event-loop stalls are counted by the least they lasted (seconds).
STALL_THRESHOLDS = (0.005, 0.02, 0.05, 0.1, 0.5)


class LoopWatch:
    """Counts the event loop's stalls: how late it wakes a task sleeping ``interval`` seconds.

    Whatever keeps the loop from its callbacks shows: a request handled on it for too long, a
    thread holding the GIL, or the machine's CPU taken by other processes.
    """

    def __init__(self, interval: float = 0.02, trace: float = 0.0) -> None:
        self.interval = interval
        self.checks = 0
        self.stalls = dict.fromkeys(STALL_THRESHOLDS, 0)
        #: Stalls from this long on (seconds) are traced (see StallTrace); 0: none.
        self.trace = trace
        #: When the loop last woke this watch (time.monotonic()).
        self.beat = time.monotonic()

    async def run(self) -> None:
        """Watch until cancelled."""
        loop = asyncio.get_running_loop()
        tracer = None
        if self.trace > 0:
            tracer = StallTrace(self, threading.get_ident(), self.trace)
            tracer.start()
        try:
            await self._watch(loop)
        finally:
            if tracer is not None:
                tracer.stop()

    async def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            before = loop.time()
            self.beat = time.monotonic()
            await asyncio.sleep(self.interval)
            self.beat = time.monotonic()
            late = loop.time() - before - self.interval
            self.checks += 1
            for threshold in STALL_THRESHOLDS:
                if late >= threshold:
                    self.stalls[threshold] += 1

    def gauges(self) -> dict[str, float]:
        """Stalls by the least they lasted, and checks made, for /metrics."""
        out = {
            f'fondplan_event_loop_stalls_total{{over="{threshold * 1000:g}ms"}}': float(n)
            for threshold, n in self.stalls.items()
        }
        out["fondplan_event_loop_checks_total"] = float(self.checks)
        return out


#: Frames of the loop's stack a stall trace shows, innermost last.
TRACE_DEPTH = 6


class StallTrace:
    """A debugging aid: samples the event loop thread's stack while it is late by more than
    ``threshold`` seconds, and logs each such stall once it ends with where it was spent.

    Samples in ``Runner.run`` (uvloop's own code) mean no Python ran: the loop was waiting for
    the CPU or the GIL, not running a request.
    """

    def __init__(self, watch: LoopWatch, loop_thread: int, threshold: float) -> None:
        self.watch = watch
        self.loop_thread = loop_thread
        self.threshold = threshold
        self.every = min(0.005, threshold / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fondplan-stall-trace", daemon=True)

    def start(self) -> None:
        """Start sampling in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def _run(self) -> None:
        samples: Counter[str] = Counter()
        since = 0.0
        while not self._stop.wait(self.every):
            late = time.monotonic() - self.watch.beat - self.watch.interval
            if late >= self.threshold:
                frame = sys._current_frames().get(self.loop_thread)
                if frame is not None:
                    samples[stack_summary(frame)] += 1
                    since = since or self.watch.beat
            elif samples:
                self._report(self.watch.beat - since - self.watch.interval, samples)
                samples, since = Counter(), 0.0

    @staticmethod
    def _report(lasted: float, samples: Counter[str]) -> None:
        total = sum(samples.values())
        where = "; ".join(f"{n}/{total} in {stack}" for stack, n in samples.most_common(3))
        log.warning("event loop stalled %.0f ms: %s", lasted * 1000, where)


def stack_summary(frame: Any) -> str:
    """The innermost frames of a stack, outermost first, on one line."""
    frames = traceback.extract_stack(frame)[-TRACE_DEPTH:]
    return " > ".join(f"{f.name} ({_short(f.filename)}:{f.lineno})" for f in frames)


def _short(path: str) -> str:
    return "/".join(path.split("/")[-2:])

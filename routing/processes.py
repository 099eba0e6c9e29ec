"""Routing queries answered in child processes, so their Python work never holds the GIL."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from osmimport.children import pool_pids, stop_pool, stop_with_parent
from routing.service import RoutingService
from routing.settings import RoutingSettings

log = logging.getLogger(__name__)

#: The answer when a request's child died twice.
FAILED = b'{"code":"ServiceUnavailable","message":"the routing process failed; try again"}'
#: The service of a child process (set by its initializer).
_service: RoutingService | None = None
#: The data version the child's current request is answered for.
_version = ""


def _start_child(url: str, settings: RoutingSettings, data_dir: Path | None) -> None:
    """Initializer of a child: its own service, following the version each request names."""
    global _service
    stop_with_parent()
    _service = RoutingService(url, settings, follow=lambda: _version, data_dir=data_dir)


def _answer(
    version: str, method: str, profile: str, coordinates: str, query: list[tuple[str, str]]
) -> tuple[int, bytes]:
    """One request, in a child: the status and JSON body."""
    from routing.http import answer

    global _version
    assert _service is not None
    if version != _version:
        _version = version
        _service.forget_other_versions(version)
    return answer(_service, method, profile, coordinates, query)


class RoutingProcesses:
    """A pool of ``count`` child processes answering the requests the event loop does not.

    Route searches, step lists and JSON encoding are Python work that holds the GIL: in a
    worker thread of the server they make its event loop (which answers cached tiles) wait for
    it. The children memory-map the routing data files the server loaded, so they share their
    pages; each builds its own search structures on its first request of a data version. Started
    on first use; a child that dies is replaced with the whole pool.
    """

    def __init__(
        self, url: str, settings: RoutingSettings, data_dir: Path | None, count: int
    ) -> None:
        self.url = url
        self.settings = settings
        self.data_dir = data_dir
        self.count = count
        #: Requests answered, and pools lost to a dead child.
        self.answered = 0
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.count,
                # Not fork: the server has threads, locks and database connections.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(self.url, self.settings, self.data_dir),
            )
        return self._pool

    async def answer(
        self,
        version: str,
        method: str,
        profile: str,
        coordinates: str,
        query: Sequence[tuple[str, str]],
    ) -> tuple[int, bytes]:
        """The status and JSON body of a request, computed in a child (once more in a new
        pool if the child died; then 503)."""
        for _attempt in (1, 2):
            pool = self._executor()
            try:
                future = pool.submit(_answer, version, method, profile, coordinates, list(query))
                result = await asyncio.wrap_future(future)
            except BrokenProcessPool:
                log.warning("a routing process died: starting new ones")
                self.restarts += 1
                if self._pool is pool:
                    self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                continue
            self.answered += 1
            return result
        return 503, FAILED

    def pids(self) -> list[int]:
        """The child processes running now."""
        return pool_pids(self._pool)

    def close(self) -> None:
        """Stop the children (requests still running in them are lost)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            stop_pool(pool)

    def gauges(self) -> dict[str, float]:
        """The pool's state, for /metrics."""
        return {
            "fondplan_routing_processes": float(len(self.pids())),
            "fondplan_routing_process_answers_total": float(self.answered),
            "fondplan_routing_process_restarts_total": float(self.restarts),
        }

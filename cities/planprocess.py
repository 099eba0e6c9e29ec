"""Town plans drawn in child processes, so their Python work never holds the server's GIL."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from cities.communes import Commune
from cities.errors import CitiesError, PlanBusy
from cities.render import MapRenderer
from cities.townplan import PlanOptions, commune_area, make_plan
from osmimport.children import lower_priority, pool_pids, stop_pool, stop_with_parent

log = logging.getLogger(__name__)

#: Builds a child's renderer, in the child, from a callable giving the data version of the plan
#: being drawn (the renderer forgets the tiles of an older one). Picklable: a module-level
#: function or a ``functools.partial`` of one.
RendererFactory = Callable[[Callable[[], str]], MapRenderer]

#: The renderer of a child process (set by its initializer).
_renderer: MapRenderer | None = None
#: The data version the child's current plan is drawn from.
_version = ""
#: Niceness added to the database backends of the child's plans (the child's own).
_backend_nice = 0


@dataclass(frozen=True)
class DrawnPlan:
    """What a child sends back: the documents, and the facts the server logs."""

    pages: int
    files: tuple[bytes, ...]
    label_count: int
    warnings: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class CarriedError:
    """A plan error raised in a child, sent back field by field (their constructors take other
    arguments than their message, so they do not unpickle as they are)."""

    kind: type[CitiesError]
    message: str
    state: dict[str, Any]

    def rebuild(self) -> CitiesError:
        """The same error, in this process."""
        error = self.kind.__new__(self.kind)
        Exception.__init__(error, self.message)
        error.__dict__.update(self.state)
        return error


def _start_child(factory: RendererFactory, nice: int) -> None:
    """Initializer of a child: stop with the server, yield the CPU to it, build the renderer."""
    global _renderer, _backend_nice
    stop_with_parent()
    # Mostly done already by the server as it started this process (PlanProcesses.draw).
    lower_priority(0, nice, os.getppid())
    _backend_nice = nice
    _renderer = factory(lambda: _version)


def _draw(
    version: str, url: str, commune: Commune, options: PlanOptions
) -> DrawnPlan | CarriedError:
    """One plan, in a child."""
    global _version
    assert _renderer is not None
    _version = version
    started = time.monotonic()
    prepare = getattr(_renderer, "prepare", None)
    if callable(prepare):
        prepare()
    try:
        area = commune_area(url, commune, backend_nice=_backend_nice)
        made = make_plan(url, area, options, _renderer, backend_nice=_backend_nice)
    except CitiesError as error:
        return CarriedError(type(error), str(error), dict(vars(error)))
    return DrawnPlan(
        made.page_count, tuple(made.documents), made.label_count, tuple(made.warnings),
        time.monotonic() - started,
    )  # fmt: skip


class PlanProcesses:
    """``count`` child processes drawing plans, started on first use (spawned, not forked: the
    server has threads and database connections); a child that dies is replaced with the pool.

    Plans must be submitted from long-lived threads: a child is stopped (``PR_SET_PDEATHSIG``)
    when the thread that started it ends.
    """

    def __init__(self, factory: RendererFactory, count: int, nice: int = 0) -> None:
        self.factory = factory
        self.count = count
        self.nice = nice
        #: Plans drawn, and pools lost to a dead child.
        self.drawn = 0
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise PlanBusy("the server is stopping")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.count,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(self.factory, self.nice),
                )
            return self._pool

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
            self.restarts += 1
        log.warning("a town plan process died: starting a new one")
        pool.shutdown(wait=False, cancel_futures=True)

    def draw(self, version: str, url: str, commune: Commune, options: PlanOptions) -> DrawnPlan:
        """The plan of ``commune`` from the data at ``url`` (of data ``version``), drawn in a
        child. Raises the plan's :class:`CitiesError`, or :class:`PlanBusy` when the child died
        while drawing it."""
        for _attempt in (1, 2):
            pool = self._executor()
            try:
                future = pool.submit(_draw, version, url, commune, options)
                # Children start with the first plan: niced at once, their interpreter's
                # start-up yields the CPU to the server too (not only once they run).
                for pid in pool_pids(pool):
                    lower_priority(pid, self.nice, os.getpid())
            except BrokenProcessPool:
                # The child died between plans: nothing of this one is lost.
                self._replace(pool)
                continue
            except RuntimeError:
                raise PlanBusy("the server is stopping") from None
            try:
                outcome = future.result()
            except BrokenProcessPool:
                self._replace(pool)
                raise PlanBusy("the plan process stopped while drawing; try again") from None
            if isinstance(outcome, CarriedError):
                raise outcome.rebuild()
            with self._lock:
                self.drawn += 1
            return outcome
        raise PlanBusy("the plan process fails to start; try again")

    def pids(self) -> list[int]:
        """The child processes running now."""
        return pool_pids(self._pool)

    def close(self) -> None:
        """Stop the children (plans being drawn are lost; their requests get 503)."""
        with self._lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None:
            stop_pool(pool)

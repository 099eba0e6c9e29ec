"""HTTP routes: ``GET /townplans/{commune}.pdf|.png`` and the viewer's "Plan de ville" panel."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cities.communes import Commune, find_commune, list_communes
from cities.errors import CitiesError, NoSuchPage, PlanBusy, PlanTimeout
from cities.paper import DEFAULT_PAPER, PAPERS, parse_layout, parse_orientation, parse_paper
from cities.planprocess import PlanProcesses
from cities.settings import TownplanSettings
from cities.townplan import PlanOptions
from osmimport.database import connect
from osmimport.dataversion import read_data_version
from osmimport.etag import none_match
from osmimport.lru import LRUCache
from osmimport.update import plan_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Documents:
    """A finished plan: its page count and documents (one PDF, or one PNG per page)."""

    pages: int
    files: tuple[bytes, ...]

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(len(f) for f in self.files)


#: Admits a request to a limited kind of work (waits for its turn, or raises).
Admission = Callable[[], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def unlimited() -> AsyncIterator[None]:
    """The admission of a server with no limits: at once."""
    yield


#: Cache key of a plan: (data version, commune OSM id, options).
PlanKey = tuple[str, str, str]


class PlanService:
    """Draws plans in a bounded pool and keeps the finished ones; one plan per key at a time.

    Each plan is drawn by one of ``processes`` (its Python work would hold the server's GIL);
    a thread of the pool waits for it, so the bounds, the time limit and the cache stay here.
    """

    def __init__(
        self, database_url: str, processes: PlanProcesses, settings: TownplanSettings
    ) -> None:
        self.database_url = database_url
        self.processes = processes
        self.settings = settings
        self.cache: LRUCache[tuple[str, ...], Documents] = LRUCache(
            settings.cache_bytes, lambda documents: documents.size
        )
        # Long-lived threads: the child processes are started from them (see PlanProcesses).
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="townplan")
        self._slots = threading.BoundedSemaphore(settings.workers + settings.queue)
        self._running: dict[PlanKey, Future[Documents]] = {}
        self._lock = threading.Lock()

    def drawing(
        self, key: PlanKey, commune: Commune, options: PlanOptions, data_version: str
    ) -> Future[Documents]:
        """The plan of ``key`` drawn from the data of ``data_version``: cached (a done future),
        or the drawing of it under way, joined, or a new one.

        Only a new drawing takes a place (``workers`` drawing, ``queue`` waiting): requests for
        a plan being drawn wait for it without one. Raises :class:`PlanBusy` when every place
        is taken.
        """
        cached = self.cache.get(key)
        if cached is not None:
            done: Future[Documents] = Future()
            done.set_result(cached)
            return done
        with self._lock:
            future = self._running.get(key)
            if future is None:
                if not self._slots.acquire(blocking=False):
                    raise PlanBusy("too many plans being drawn; try again shortly")
                future = self._pool.submit(self._draw, key, commune, options, data_version)
                self._running[key] = future
        return future

    def documents(
        self, key: PlanKey, commune: Commune, options: PlanOptions, data_version: str
    ) -> Documents:
        """The plan of ``key`` (see :meth:`drawing`), waiting for it in this thread.

        Raises :class:`PlanBusy` when every place is taken or the drawing process died, and
        :class:`PlanTimeout` past the time limit (the plan is still finished and cached for
        the next request).
        """
        try:
            return self.drawing(key, commune, options, data_version).result(
                timeout=self.settings.timeout
            )
        except FutureTimeout:
            raise PlanTimeout(
                "the plan takes longer than the time limit; try again later"
            ) from None

    async def documents_async(
        self, key: PlanKey, commune: Commune, options: PlanOptions, data_version: str
    ) -> Documents:
        """:meth:`documents` waiting on the event loop: a request waiting for its plan holds
        no thread, so any number of them may join one drawing."""
        future = asyncio.wrap_future(self.drawing(key, commune, options, data_version))
        try:
            # Shielded: a request that gives up (time limit, client gone) leaves the drawing
            # to finish for the others and the cache.
            return await asyncio.wait_for(asyncio.shield(future), self.settings.timeout)
        except TimeoutError:
            raise PlanTimeout(
                "the plan takes longer than the time limit; try again later"
            ) from None

    def _draw(
        self, key: PlanKey, commune: Commune, options: PlanOptions, data_version: str
    ) -> Documents:
        try:
            drawn = self.processes.draw(data_version, self.database_url, commune, options)
            documents = Documents(drawn.pages, drawn.files)
            self.cache.put(key, documents)
            log.info(
                "town plan %s (%s) drawn in %.1f s: %d pages, %d street names",
                commune.label, options.cache_key, drawn.seconds, drawn.pages, drawn.label_count,
            )  # fmt: skip
            for warning in drawn.warnings:
                log.warning("town plan %s: %s", commune.label, warning)
            return documents
        finally:
            self._slots.release()
            with self._lock:
                self._running.pop(key, None)

    def health(self) -> dict[str, Any]:
        """The plan processes' state for ``/health``: their pids (none before the first plan),
        plans drawn, pools replaced."""
        pids = self.processes.pids()
        return {
            "ready": True,
            "started": bool(pids),
            "pids": pids,
            "drawn": self.processes.drawn,
            "restarts": self.processes.restarts,
        }

    def gauges(self) -> dict[str, float]:
        """Plan process counters for /metrics."""
        return {
            "fondplan_plan_processes": float(len(self.processes.pids())),
            "fondplan_plans_drawn_total": float(self.processes.drawn),
            "fondplan_plan_process_restarts_total": float(self.processes.restarts),
        }

    def close(self) -> None:
        """Stop the plan processes and the threads waiting for them (at server shutdown)."""
        self.processes.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def plan_request(request: Request, max_dpi: int) -> tuple[str, PlanOptions, int]:
    """The commune asked for, the plan options and the page of a ``/townplans/{name}`` request."""
    stem, _, fmt = request.path_params["name"].rpartition(".")
    if fmt not in ("pdf", "png") or not stem:
        raise NoSuchPage("ask for /townplans/{commune}.pdf or .png")
    query = request.query_params
    page_text = query.get("page", "1")
    if not page_text.isdigit() or int(page_text) < 1:
        raise CitiesError(f"page must be a whole number from 1, got {page_text!r}")
    page = int(page_text)
    if fmt == "pdf" and page != 1:
        raise CitiesError("a PDF plan holds every page: ask for page=N with .png")
    dpi_text = query.get("dpi", "150" if fmt == "png" else "300")
    if not dpi_text.isdigit():
        raise CitiesError(f"dpi must be a whole number, got {dpi_text!r}")
    if int(dpi_text) > max_dpi:
        raise CitiesError(f"dpi may be at most {max_dpi}")
    options = PlanOptions(
        paper=parse_paper(query.get("paper", DEFAULT_PAPER)),
        orientation=parse_orientation(query.get("orientation", "best")),
        layout=parse_layout(query.get("layout", "index-side")),
        format=fmt,
        dpi=int(dpi_text),
    )
    return stem, options, page


class TownplanEndpoints:
    """The ``/townplans`` endpoints over one :class:`PlanService`; errors are raised as
    :mod:`cities.errors` and answered by the server's error map."""

    def __init__(self, service: PlanService, admit: Admission = unlimited) -> None:
        self.service = service
        self.admit = admit

    def communes(self, request: Request) -> Response:
        """``communes.json``: the communes of the data, filtered by ``?search=``."""
        conn = connect(self.service.database_url)
        try:
            found = list_communes(conn, request.query_params.get("search"))
        finally:
            conn.close()
        return JSONResponse(
            [
                {"name": c.label, "insee": c.insee, "country": c.country, "complete": c.complete}
                for c in found
            ]
        )

    def papers(self, request: Request) -> Response:
        """``papers.json``: the paper sizes a plan may take (portrait, mm) and the default one."""
        sizes = [{"name": n, "width_mm": w, "height_mm": h} for n, (w, h) in PAPERS.items()]
        return JSONResponse({"default": DEFAULT_PAPER, "papers": sizes})

    def panel(self, request: Request) -> Response:
        """The viewer's "Plan de ville" panel script."""
        script = resources.files("cities").joinpath("static", "townplan-panel.js")
        return Response(
            script.read_text(encoding="utf-8"),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def _lookup(self, request: Request) -> tuple[PlanKey, Commune, PlanOptions, str, int]:
        """The plan a request asks for: its cache key, commune, options, data version, page."""
        stem, options, page = plan_request(request, self.service.settings.max_dpi)
        conn = connect(self.service.database_url)
        try:
            data_version = read_data_version(conn)
            by_insee = stem.isdigit() and len(stem) == 5
            commune = find_commune(conn, insee=stem) if by_insee else find_commune(conn, name=stem)
            # Plans of communes an update did not touch keep their cache entry and ETag.
            version = plan_version(conn, commune.osm_id, data_version)
        finally:
            conn.close()
        return (
            (version, str(commune.osm_id), options.cache_key),
            commune,
            options,
            data_version,
            page,
        )

    async def plan(self, request: Request) -> Response:
        """One page of a plan (a PDF holds them all); HEAD answers without drawing.

        The database lookup runs in a thread admitted by ``admit``; the wait for the drawing
        holds none (see :meth:`PlanService.documents_async`).
        """
        async with self.admit():
            key, commune, options, data_version, page = await run_in_threadpool(
                self._lookup, request
            )
        suffix = "" if page == 1 else f"-{page}"
        filename = f"plan-{commune.slug}{suffix}.{options.format}"
        media = options_media(options.format)
        headers = {
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "public, max-age=3600",
        }
        etag = _etag(key, page)
        if none_match(request.headers.getlist("if-none-match"), etag):
            # The key names the data the plan is drawn from: no need to draw it to know.
            return Response(None, status_code=304, headers={**headers, "ETag": etag})
        if request.method == "HEAD":
            # Headers only: from a finished plan, or what is known without drawing one.
            found = self.service.cache.get(key)
            if found is None:
                return Response(None, media_type=media, headers=headers)
            body = _page(found, page)
            headers["Content-Length"] = str(len(body))
        else:
            found = await self.service.documents_async(key, commune, options, data_version)
            body = _page(found, page)
        headers["X-Page-Count"] = str(found.pages)
        headers["ETag"] = etag
        return Response(None if request.method == "HEAD" else body, media_type=media,
                        headers=headers)  # fmt: skip


def _page(documents: Documents, page: int) -> bytes:
    if page > len(documents.files):
        raise NoSuchPage(f"the plan has {documents.pages} page(s); there is no page {page}")
    return documents.files[page - 1]


def townplan_routes(service: PlanService, admit: Admission = unlimited) -> list[BaseRoute]:
    """The ``/townplans`` routes of ``service`` (mount them at the app root); ``admit``
    bounds the plan requests looking up their plan in the database at once."""
    endpoints = TownplanEndpoints(service, admit)
    return [
        Route("/townplans/communes.json", endpoints.communes, methods=["GET"]),
        Route("/townplans/papers.json", endpoints.papers, methods=["GET"]),
        Route("/townplans/panel.js", endpoints.panel, methods=["GET"]),
        Route("/townplans/{name}", endpoints.plan, methods=["GET"]),
    ]


def _etag(key: tuple[str, ...], page: int) -> str:
    """A strong ETag of one page of a cached plan (stable across processes)."""
    digest = hashlib.sha256("\x00".join((*key, str(page))).encode()).hexdigest()[:32]
    return f'"{digest}"'


def options_media(fmt: str) -> str:
    """MIME type of a plan format."""
    return "application/pdf" if fmt == "pdf" else "image/png"

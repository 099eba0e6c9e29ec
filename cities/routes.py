"""HTTP routes: ``GET /townplans/{commune}.pdf|.png`` and the viewer's "Plan de ville" panel."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from importlib import resources

import psycopg2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cities.communes import find_commune, list_communes
from cities.db import data_version
from cities.errors import CitiesError, IncompleteBoundary, NoData, UnknownCommune
from cities.paper import parse_layout, parse_orientation, parse_paper
from cities.render import MapRenderer
from cities.settings import TownplanSettings
from cities.townplan import PlanOptions, commune_area, make_plan
from osmimport.database import connect
from osmimport.errors import DatabaseError, FondplanError


@dataclass(frozen=True)
class Documents:
    """A finished plan: its page count and documents (one PDF, or one PNG per page)."""

    pages: int
    files: tuple[bytes, ...]

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(len(f) for f in self.files)


class PlanCache:
    """Finished plans by (data version, commune, options), least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], Documents] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Documents | None:
        """The cached document, if any."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, ...], value: Documents) -> None:
        """Keep ``value``; drop the oldest entries beyond the size limit."""
        size = value.size
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._size -= self._items.pop(key).size
            self._items[key] = value
            self._size += size
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= old.size


def _error(status: int, detail: str) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


#: What a client is told when the database fails (its own message names hosts and ports).
DATABASE_DOWN = "the database is unavailable; try again shortly"


def townplan_routes(
    database_url: str,
    renderer: MapRenderer,
    settings: TownplanSettings,
) -> list[BaseRoute]:
    """The ``/townplans`` routes (mount them at the app root), drawing maps with ``renderer``."""
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="townplan")
    slots = threading.BoundedSemaphore(settings.workers + settings.queue)
    cache = PlanCache(settings.cache_bytes)
    running: dict[tuple[str, ...], Future[Documents]] = {}
    running_lock = threading.Lock()

    def communes(request: Request) -> Response:
        search = request.query_params.get("search")
        try:
            conn = connect(database_url)
            try:
                found = list_communes(conn, search)
            finally:
                conn.close()
        except (DatabaseError, psycopg2.Error):
            return _error(503, DATABASE_DOWN)
        return JSONResponse(
            [
                {"name": c.label, "insee": c.insee, "country": c.country, "complete": c.complete}
                for c in found
            ]
        )

    def panel(request: Request) -> Response:
        script = resources.files("cities").joinpath("static", "townplan-panel.js")
        return Response(
            script.read_text(encoding="utf-8"),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def plan(request: Request) -> Response:
        name: str = request.path_params["name"]
        stem, _, fmt = name.rpartition(".")
        if fmt not in ("pdf", "png") or not stem:
            return _error(404, "ask for /townplans/{commune}.pdf or .png")
        query = request.query_params
        page_text = query.get("page", "1")
        if not page_text.isdigit() or int(page_text) < 1:
            return _error(400, f"page must be a whole number from 1, got {page_text!r}")
        page = int(page_text)
        if fmt == "pdf" and page != 1:
            return _error(400, "a PDF plan holds every page: ask for page=N with .png")
        try:
            dpi = int(query.get("dpi", "150" if fmt == "png" else "300"))
            if dpi > settings.max_dpi:
                raise CitiesError(f"dpi may be at most {settings.max_dpi}")
            options = PlanOptions(
                paper=parse_paper(query.get("paper", "A3")),
                orientation=parse_orientation(query.get("orientation", "best")),
                layout=parse_layout(query.get("layout", "index-side")),
                format=fmt,
                dpi=dpi,
            )
            conn = connect(database_url)
            try:
                version = data_version(conn)
                if stem.isdigit() and len(stem) == 5:
                    commune = find_commune(conn, insee=stem)
                else:
                    commune = find_commune(conn, name=stem)
            finally:
                conn.close()
        except ValueError:
            return _error(400, "dpi must be a whole number")
        except UnknownCommune as exc:
            return JSONResponse(
                {"detail": str(exc), "suggestions": exc.suggestions}, status_code=404
            )
        except IncompleteBoundary as exc:
            return _error(422, str(exc))
        except NoData as exc:
            return _error(503, str(exc))
        except (DatabaseError, psycopg2.Error):
            # The server's fault, not the request's.
            return _error(503, DATABASE_DOWN)
        except FondplanError as exc:
            return _error(400, str(exc))
        key = (version, str(commune.osm_id), options.cache_key)
        suffix = "" if page == 1 else f"-{page}"
        filename = f"plan-{commune.slug}{suffix}.{fmt}"
        headers = {
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "public, max-age=3600",
        }
        cached = cache.get(key)
        if request.method == "HEAD":
            # Headers only: from a finished plan, or what is known without drawing one.
            if cached is None:
                return Response(None, media_type=options_media(fmt), headers=headers)
            if page > len(cached.files):
                return _error(404, f"the plan has {cached.pages} page(s); there is no page {page}")
            return Response(
                None,
                media_type=options_media(fmt),
                headers={
                    **headers,
                    "Content-Length": str(len(cached.files[page - 1])),
                    "X-Page-Count": str(cached.pages),
                    "ETag": _etag(key, page),
                },
            )
        if cached is None:
            with running_lock:
                future = running.get(key)
                if future is None:
                    if not slots.acquire(blocking=False):
                        return _error(503, "too many plans being drawn; try again shortly")

                    def work() -> Documents:
                        try:
                            area = commune_area(database_url, commune)
                            made = make_plan(database_url, area, options, renderer)
                            documents = Documents(made.page_count, tuple(made.documents))
                            cache.put(key, documents)
                            return documents
                        finally:
                            slots.release()
                            with running_lock:
                                running.pop(key, None)

                    future = pool.submit(work)
                    running[key] = future
            try:
                cached = future.result(timeout=settings.timeout)
            except FutureTimeout:
                return _error(503, "the plan takes longer than the time limit; try again later")
            except CitiesError as exc:
                return _error(400, str(exc))
            except (DatabaseError, psycopg2.Error):
                return _error(503, DATABASE_DOWN)
            except FondplanError as exc:
                # The map renderer failed or is busy: not the request's fault.
                return _error(503, str(exc))
        if page > len(cached.files):
            return _error(404, f"the plan has {cached.pages} page(s); there is no page {page}")
        return Response(
            cached.files[page - 1],
            media_type=options_media(fmt),
            headers={**headers, "X-Page-Count": str(cached.pages), "ETag": _etag(key, page)},
        )

    return [
        Route("/townplans/communes.json", communes, methods=["GET"]),
        Route("/townplans/panel.js", panel, methods=["GET"]),
        Route("/townplans/{name}", plan, methods=["GET"]),
    ]


def _etag(key: tuple[str, ...], page: int) -> str:
    """A strong ETag of one page of a cached plan (stable across processes)."""
    digest = hashlib.sha256("\x00".join((*key, str(page))).encode()).hexdigest()[:32]
    return f'"{digest}"'


def options_media(fmt: str) -> str:
    """MIME type of a plan format."""
    return "application/pdf" if fmt == "pdf" else "image/png"

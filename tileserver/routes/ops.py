"""Operations: ``/health`` (database reachable, data version) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from osmimport.errors import FondplanError
from tileserver.context import AppContext
from tileserver.routes.tiles import tile_service
from tileserver.sources import PostGISSource


def health(request: Request) -> Response:
    """200 with the data version when the data can be read, else 503; also the state of the
    routing profiles and the raster renderer. ``status`` is ``ok`` when all of them are
    ready, ``loading`` while one loads (at start), ``degraded`` when one cannot be (tiles are
    served all the same)."""
    service = tile_service(request)
    context: AppContext = request.app.state.context
    source = service.source
    body: dict[str, object] = {"data_version": service.version}
    if isinstance(source, PostGISSource):
        try:
            with source.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            body["database"] = "ok"
        except (psycopg2.Error, FondplanError) as exc:
            body.update(status="unavailable", database=str(exc).strip() or "unreachable")
            return JSONResponse(body, status_code=503)
        body["layers"] = len(source.catalog.columns)
    else:
        body["database"] = "not used"
        body["tiles_file"] = str(getattr(source, "path", ""))
    states = {name: describe() for name, describe in context.health.items()}
    body.update(states)
    body["status"] = "ok"
    if not all(state.get("ready", True) for state in states.values()):
        loading = any(state.get("loading") for state in states.values())
        body["status"] = "loading" if loading else "degraded"
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def metrics(request: Request) -> Response:
    """The Prometheus text exposition."""
    service = tile_service(request)
    extra = {
        "fondplan_tile_cache_memory_bytes": float(service.memory.size_bytes),
        "fondplan_tile_cache_memory_tiles": float(len(service.memory)),
    }
    return PlainTextResponse(
        service.metrics.render(extra),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The operations routes, at the root."""
    return [
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

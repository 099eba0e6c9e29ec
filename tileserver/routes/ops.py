"""Operations: ``/health``, ``/metrics`` (Prometheus) and ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from osmimport.errors import FondplanError
from tileserver.context import AppContext
from tileserver.openapi import document
from tileserver.routes import public_url
from tileserver.routes.tiles import tile_service
from tileserver.sources import PostGISSource


def health(request: Request) -> Response:
    """200 with the data version, the database's state, the routing profiles and the renderer.

    ``status`` is ``ok`` when all are ready, ``loading`` while a routing profile loads (at start),
    ``degraded`` while the database cannot be read or a part cannot be made ready. The server
    then still answers cached tiles, styles, fonts and sprites, so it stays in service (a load
    balancer taking it out would serve nothing at all). The probe never waits longer than the
    connect timeout, and not at all while the database is known to be down.
    """
    service = tile_service(request)
    context: AppContext = request.app.state.context
    source = service.source
    body: dict[str, object] = {"data_version": service.version, "status": "ok"}
    if isinstance(source, PostGISSource):
        try:
            with source.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            body["database"] = "ok"
        except (psycopg2.Error, FondplanError):
            body.update(status="degraded", database="unavailable")
        body["layers"] = len(source.catalog.columns)
    else:
        body["database"] = "not used"
        body["tiles_file"] = str(getattr(source, "path", ""))
    states = {name: describe() for name, describe in context.health.items()}
    body.update(states)
    if body["status"] == "ok" and not all(state.get("ready", True) for state in states.values()):
        loading = any(state.get("loading") for state in states.values())
        body["status"] = "loading" if loading else "degraded"
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def metrics(request: Request) -> Response:
    """The Prometheus text exposition."""
    service = tile_service(request)
    extra = {
        "fondplan_tile_cache_memory_bytes": float(service.memory.total_cost),
        "fondplan_tile_cache_memory_tiles": float(len(service.memory)),
    }
    return PlainTextResponse(
        service.metrics.render(extra),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def openapi(request: Request) -> Response:
    """The OpenAPI document of the HTTP API."""
    return JSONResponse(document(public_url(request)), headers={"Cache-Control": "no-cache"})


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The operations routes, at the root."""
    return [
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET", "HEAD"]),
    ]

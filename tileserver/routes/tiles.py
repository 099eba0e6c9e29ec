"""Vector tiles: ``/tiles/{tileset}.json`` (TileJSON 3.0), ``/tiles/{tileset}/{z}/{x}/{y}.mvt``."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from osmimport import schema
from osmimport.etag import none_match
from tileserver.cache import CachedTile
from tileserver.context import AppContext
from tileserver.errors import BadRequest, NotFound, TileOutOfRange
from tileserver.fastpath import FastAnswer, FastRoute
from tileserver.routes import app_settings, cached_json, document_max_age, public_url
from tileserver.service import TileService
from tileserver.sources import ATTRIBUTION

#: The one tileset: the Shortbread basemap.
TILESET = "basemap"

#: Set in the scope by the fast path when it found the tile not in memory.
MISSED = "fondplan.tile_missed"
MEDIA_TYPES = {"mvt": "application/vnd.mapbox-vector-tile", "pbf": "application/x-protobuf"}
_TAIL = re.compile(r"^(-?\d{1,9})\.([A-Za-z0-9]+)$")
_INT = re.compile(r"^-?\d{1,9}$")


def tile_service(request: Request) -> TileService:
    """The app's tile service."""
    service: TileService = request.app.state.tiles
    return service


def _check_tileset(name: str) -> None:
    if name != TILESET:
        raise NotFound(f"unknown tileset {name!r}; this server has {TILESET!r}")


def parse_tile_path(z: str, x: str, tail: str) -> tuple[int, int, int, str]:
    """Validate ``{z}/{x}/{y}.{ext}``: 400 when malformed, 404 outside the world or zoom range."""
    match = _TAIL.match(tail)
    if not (_INT.match(z) and _INT.match(x) and match):
        raise BadRequest(f"malformed tile path {z}/{x}/{tail}: expected {{z}}/{{x}}/{{y}}.mvt")
    ext = match.group(2).lower()
    if ext not in MEDIA_TYPES:
        raise BadRequest(f"unsupported tile format {ext!r}: use .mvt or .pbf")
    zoom, col, row = int(z), int(x), int(match.group(1))
    if not 0 <= zoom <= schema.MAX_ZOOM:
        raise TileOutOfRange(f"zoom {zoom} is outside 0-{schema.MAX_ZOOM}")
    size = 1 << zoom
    if not (0 <= col < size and 0 <= row < size):
        raise TileOutOfRange(f"tile {zoom}/{col}/{row} is outside the world")
    return zoom, col, row, ext


def tile_answer(
    tile: CachedTile, accepts_gzip: bool, if_none_match: list[str], media_type: str, max_age: int
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a tile: 204 empty, 304 unchanged, else gzip or identity
    bytes."""
    etag = f'"{tile.etag}"' if accepts_gzip else f'"{tile.etag}-identity"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept-Encoding",
    }
    if none_match(if_none_match, etag):
        return 304, headers, b""
    if tile.empty:
        return 204, headers, b""
    headers["Content-Type"] = media_type
    if accepts_gzip:
        headers["Content-Encoding"] = "gzip"
        return 200, headers, tile.gzipped
    return 200, headers, tile.raw()


def tile_response(request: Request, tile: CachedTile, media_type: str, max_age: int) -> Response:
    """The HTTP answer for a tile (see :func:`tile_answer`)."""
    accepts_gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
    status, headers, body = tile_answer(
        tile, accepts_gzip, request.headers.getlist("if-none-match"), media_type, max_age
    )
    return Response(body if status == 200 else None, status_code=status, headers=headers)


def fast_tile(service: TileService, max_age: int, scope: Scope) -> FastAnswer | None:
    """A tile in the memory cache, answered on the fast path (no routing, no admission); a
    miss is left to :func:`tile`, which then does not count it again."""
    parts = scope["path"].split("/")
    if len(parts) != 6 or parts[2] != TILESET or scope.get(MISSED):
        # A miss seen already (by the protocol's immediate answer) is not looked up again.
        return None
    started = time.perf_counter()
    z, x, y, ext = parse_tile_path(parts[3], parts[4], parts[5])
    found = service.cached(z, x, y)
    if found is None:
        scope[MISSED] = True
        return None
    accepts_gzip = False
    if_none_match = []
    for name, value in scope["headers"]:
        if name == b"accept-encoding" and not accepts_gzip:
            accepts_gzip = b"gzip" in value.lower()
        elif name == b"if-none-match":
            if_none_match.append(value.decode("latin-1"))
    status, headers, body = tile_answer(found, accepts_gzip, if_none_match, MEDIA_TYPES[ext],
                                        max_age)  # fmt: skip
    service.metrics.tile_latency("memory", time.perf_counter() - started)
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return status, encoded, body


async def tile(request: Request) -> Response:
    """One vector tile; memory hits are answered on the event loop, disk hits and cuts in a
    thread."""
    params = request.path_params
    _check_tileset(params["tileset"])
    z, x, y, ext = parse_tile_path(params["z"], params["x"], params["tail"])
    service = tile_service(request)
    started = time.perf_counter()
    found = None if request.scope.get(MISSED) else service.cached(z, x, y)
    origin = "memory"
    if found is None and service.disk is not None:
        found, origin = await run_in_threadpool(service.stored, z, x, y), "disk"
    if found is None:
        # Only tiles to cut are admitted by the tiles gate: those of the caches (the disk's,
        # which another worker may have filled) never queue behind database queries.
        async with request.app.state.limits["tiles"].slot():
            found_tile, origin = await run_in_threadpool(service.cut, z, x, y)
    else:
        found_tile = found
    service.metrics.tile_latency(origin, time.perf_counter() - started)
    max_age = app_settings(request).tiles.max_age
    return tile_response(request, found_tile, MEDIA_TYPES[ext], max_age)


def tilejson_response(
    request: Request, name: str, description: str, tile_url: str, fmt: str, **fields: object
) -> Response:
    """A TileJSON 3.0.0 document with the attribution and data version, plus ``fields``."""
    body = {
        "tilejson": "3.0.0",
        "name": name,
        "description": description,
        "scheme": "xyz",
        "format": fmt,
        "tiles": [tile_url],
        "attribution": ATTRIBUTION,
        "fondplan:data_version": tile_service(request).version,
        **fields,
    }
    return cached_json(request, body, document_max_age(request))


def tilejson(request: Request) -> Response:
    """TileJSON 3.0.0 of the tileset, with absolute tile URLs."""
    _check_tileset(request.path_params["tileset"])
    return tilejson_response(
        request,
        "fondplan basemap",
        "OpenStreetMap vector tiles in the Shortbread 1.1 schema",
        f"{public_url(request)}/tiles/{TILESET}/{{z}}/{{x}}/{{y}}.mvt",
        "pbf",
        version="1.0.0",
        **tile_service(request).source.describe(),
    )


def malformed(request: Request) -> Response:
    """Any other path under /tiles."""
    raise BadRequest(
        f"malformed tile path {request.url.path!r}: expected /tiles/{TILESET}/{{z}}/{{x}}/{{y}}.mvt"
    )


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The tile routes, relative to their mount prefix (``/tiles``); cached tiles are
    answered ahead of them (:func:`fast_tile`)."""
    answer = partial(fast_tile, context.tiles, context.settings.tiles.max_age)
    context.fast_routes.append(
        FastRoute(f"/tiles/{TILESET}/", "tile", answer=answer, immediate=True)
    )
    return [
        Route("/{tileset}.json", tilejson, methods=["GET", "HEAD"]),
        Route("/{tileset}/{z}/{x}/{tail}", tile, methods=["GET", "HEAD"]),
        Route("/{rest:path}", malformed, methods=["GET", "HEAD"]),
    ]

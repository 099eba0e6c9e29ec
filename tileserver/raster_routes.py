"""HTTP routes of raster tiles, WMTS capabilities and QGIS connection files (TileServer GL URLs)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from osmimport import schema
from osmimport.etag import fingerprint
from osmimport.lru import LRUCache
from osmimport.update import lineage
from tileserver.context import AppContext
from tileserver.errors import BadRequest, NotFound, TileOutOfRange
from tileserver.raster import (
    RasterPool,
    RasterSettings,
    TileRequest,
    describe,
    draw_attribution,
    pool_for,
)
from tileserver.routes import cached_response, document_max_age, public_url
from tileserver.routes.styles import style_names
from tileserver.routes.tiles import TILESET, tilejson_response
from tileserver.sources import PostGISSource
from tileserver.wmts import QgisSources, WmtsLayer, capabilities, qgis_connections

#: Raster tiles are drawn up to this zoom (vector tiles stop at schema.MAX_ZOOM and overzoom).
RASTER_MAX_ZOOM = 20
TILE_SIZES = (256, 512)
_TILE_NAME = re.compile(r"^(\d+)(?:@([1-4])x)?$")
PNG = "image/png"
XML = "application/xml"
QGIS_KINDS = ("xyz", "vectortile", "wmts")


#: (data version, style, size, scale, z, x, y, attribution) of a cached PNG.
RasterKey = tuple[str, str, int, int, int, int, int, bool]


@dataclass(frozen=True)
class _Entry:
    png: bytes
    etag: str


class RasterService:
    """Raster tiles and the GIS-client documents of every style, for one app.

    The render process starts at the first render, reading the app's own tile source (the
    database of ``app.state.database_url`` or the settings' tiles file). The data version of
    the app's tile service keys the PNG cache; when it changes the render process restarts so
    MapLibre forgets the tiles of the old data.
    """

    def __init__(self, context: AppContext, raster: RasterSettings | None = None) -> None:
        self.context = context
        self.settings = context.settings
        self.raster = raster or context.settings.raster
        self.cache: LRUCache[RasterKey, _Entry] = LRUCache(
            self.raster.cache_bytes, lambda entry: len(entry.png)
        )
        self._pool: RasterPool | None = None
        self._lock = threading.Lock()
        self._rendered_version: str | None = None
        #: Renders under way, by key: requests for the same tile join them.
        self._rendering: dict[RasterKey, asyncio.Future[_Entry]] = {}

    def pool(self) -> RasterPool:
        """The render pool, created on first use (the tile source is open by then)."""
        with self._lock:
            if self._pool is None:
                source = self.context.tiles.source
                self._pool = pool_for(
                    self.settings,
                    database_url=source.url if isinstance(source, PostGISSource) else None,
                    tiles_file=self.settings.server.tiles_file,
                    raster=self.raster,
                )
            return self._pool

    def health(self) -> dict[str, Any]:
        """The render process's state for ``/health``: whether it started (on the first render),
        its process and counters, its queue limit."""
        pool = self._pool
        base: dict[str, Any] = {"ready": True, "max_pending": self.raster.max_pending}
        if pool is None:
            return {**base, "started": False}
        return {**base, "started": True, **describe(pool)}

    def gauges(self) -> dict[str, float]:
        """Render counters for /metrics."""
        facts = describe(self._pool) if self._pool is not None else {}
        return {
            "fondplan_render_total": float(facts.get("renders", 0)),
            "fondplan_render_restarts_total": float(facts.get("restarts", 0)),
            "fondplan_render_timeouts_total": float(facts.get("timeouts", 0)),
            "fondplan_render_pending": float(facts.get("pending", 0)),
            "fondplan_render_process_up": float(facts.get("pid") is not None),
        }

    def close(self) -> None:
        """Stop the render process."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()

    def _follow_version(self, version: str, pool: RasterPool) -> None:
        with self._lock:
            if self._rendered_version is not None and version != self._rendered_version:
                # MapLibre keeps the vector tiles it drew: a new process reads the new data.
                pool.restart()
            self._rendered_version = version

    def carry_over(
        self, previous: str, version: str, expired: set[tuple[int, int, int]] | None
    ) -> None:
        """Keep the PNGs of ``previous`` no tile in ``expired`` is drawn into (all go when it
        is None) as PNGs of ``version``: their ETags stay."""
        if expired is None:
            self.cache.clear()
            return

        def moved(key: RasterKey) -> RasterKey | None:
            old, style, size, scale, z, x, y, attribution = key
            if old != previous or raster_touched(z, x, y, size, expired):
                return None
            return (version, style, size, scale, z, x, y, attribution)

        self.cache.rekey(moved)

    async def tile(self, request: Request) -> Response:
        """``/styles/{style}[/{size}]/{z}/{x}/{y}[@{n}x].png``: hits answered on the event loop."""
        params = request.path_params
        style = str(params["style"])
        size = int(params.get("size", 256))
        z, x = int(params["z"]), int(params["x"])
        match = _TILE_NAME.match(str(params["name"]))
        if match is None:
            raise BadRequest("malformed raster tile name: expected {y}.png or {y}@{n}x.png")
        y, scale = int(match.group(1)), int(match.group(2) or 1)
        if size not in TILE_SIZES:
            raise NotFound(f"tile size must be one of {', '.join(map(str, TILE_SIZES))}")
        if style not in style_names():
            raise NotFound(f"unknown style {style!r}; see /styles")
        if not 0 <= z <= RASTER_MAX_ZOOM:
            raise TileOutOfRange(f"zoom {z} is outside 0-{RASTER_MAX_ZOOM}")
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            raise TileOutOfRange(f"tile {z}/{x}/{y} is outside the world")
        attribution = _flag(request, "attribution")
        version = self.context.tiles.version
        entry = await self._entry(version, style, size, scale, z, x, y, attribution)
        return cached_response(request, entry.png, PNG, self.settings.tiles.max_age, entry.etag)

    async def _entry(
        self,
        version: str,
        style: str,
        size: int,
        scale: int,
        z: int,
        x: int,
        y: int,
        attribution: bool,
    ) -> _Entry:
        """The cached PNG of a tile variant; the attributed one is drawn on the plain one.

        A request for a tile being rendered joins that render, taking no place in the gate.
        """
        key: RasterKey = (version, style, size, scale, z, x, y, attribution)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        running = self._rendering.get(key)
        if running is None:
            running = asyncio.ensure_future(self._render(key))
            self._rendering[key] = running
            running.add_done_callback(lambda done: self._rendering.pop(key, None))
            # Read by someone even when every request for it has gone.
            running.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a request that goes leaves the render to the others and the cache.
        return await asyncio.shield(running)

    async def _render(self, key: RasterKey) -> _Entry:
        """Render the tile variant of ``key`` and cache it."""
        version, style, size, scale, z, x, y, attribution = key
        if attribution:
            plain = await self._entry(version, style, size, scale, z, x, y, False)
            png = await asyncio.to_thread(
                draw_attribution, plain.png, scale, font_dirs=self.settings.assets.font_dirs
            )
        else:
            pool = self.pool()
            if version != self._rendered_version:
                self._follow_version(version, pool)
            # Renders beyond the raster gate's limit wait in its queue instead of failing.
            async with self.context.limits["raster"].slot():
                png = await pool.arender(_tile_request(style, z, x, y, size, scale))
        # Keyed by the import only: a PNG an update leaves unchanged keeps its ETag.
        entry = _Entry(png, f'"{fingerprint(png, lineage(version))}"')
        self.cache.put(key, entry)
        return entry

    def tilejson(self, request: Request) -> Response:
        """``/styles/{style}/tiles.json``, ``/styles/{size}/{style}.json``: raster TileJSON.

        The sized form is TileServer GL's (its ``/styles/{style}.json`` is the style document
        here). ``?attribution=1`` is passed on to the tile URLs.
        """
        style = str(request.path_params["style"])
        size = int(request.path_params.get("size", 256))
        if size not in TILE_SIZES:
            raise NotFound(f"tile size must be one of {', '.join(map(str, TILE_SIZES))}")
        if style not in style_names():
            raise NotFound(f"unknown style {style!r}; see /styles")
        query = "?attribution=1" if _flag(request, "attribution") else ""
        base = public_url(request)
        prefix = f"{base}/styles/{style}" + ("" if size == 256 else f"/{size}")
        described = self.context.tiles.source.describe()
        return tilejson_response(
            request,
            f"fondplan {style}",
            f"OpenStreetMap raster tiles ({size} px) drawn with the {style} style",
            f"{prefix}/{{z}}/{{x}}/{{y}}.png{query}",
            "png",
            tileSize=size,
            minzoom=0,
            maxzoom=RASTER_MAX_ZOOM,
            **{"fondplan:style": f"{base}/styles/{style}.json"},
            **{field: described[field] for field in ("bounds", "center") if described.get(field)},
        )

    def _layers(self, request: Request, base: str, styles: list[str]) -> list[WmtsLayer]:
        bounds = self.context.tiles.source.describe().get("bounds")
        layers = []
        for style in styles:
            url = f"{base}/styles/{style}/{{z}}/{{x}}/{{y}}.png"
            if bounds and len(bounds) == 4:
                west, south, east, north = (float(v) for v in bounds)
                layers.append(WmtsLayer(style, style, url, (west, south, east, north)))
            else:
                layers.append(WmtsLayer(style, style, url))
        return layers

    def _xml(self, request: Request, text: str) -> Response:
        return cached_response(request, text, XML, document_max_age(request))

    def wmts(self, request: Request) -> Response:
        """``/styles/{style}/wmts.xml``: WMTS capabilities of one style."""
        style = str(request.path_params["style"])
        if style not in style_names():
            raise NotFound(f"unknown style {style!r}; see /styles")
        base = public_url(request)
        return self._xml(
            request,
            capabilities(
                self._layers(request, base, [style]),
                capabilities_url=f"{base}/styles/{style}/wmts.xml",
                service_url=f"{base}/styles/{style}/",
                max_zoom=RASTER_MAX_ZOOM,
            ),
        )

    def wmts_all(self, request: Request) -> Response:
        """``/styles/wmts.xml``: WMTS capabilities with every style as a layer."""
        base = public_url(request)
        return self._xml(
            request,
            capabilities(
                self._layers(request, base, style_names()),
                capabilities_url=f"{base}/styles/wmts.xml",
                service_url=f"{base}/styles/",
                max_zoom=RASTER_MAX_ZOOM,
            ),
        )

    def qgis(self, request: Request) -> Response:
        """``/qgis-connections.xml?kind=xyz|vectortile|wmts``: a QGIS "Load connections" file."""
        kind = request.query_params.get("kind", "xyz")
        if kind not in QGIS_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(QGIS_KINDS)}")
        base = public_url(request)
        sources = [
            QgisSources(
                style=style,
                xyz_url=f"{base}/styles/{style}/{{z}}/{{x}}/{{y}}.png",
                vector_url=f"{base}/tiles/{TILESET}/{{z}}/{{x}}/{{y}}.mvt",
                style_url=f"{base}/styles/{style}.json",
                wmts_url=f"{base}/styles/{style}/wmts.xml",
                max_zoom=RASTER_MAX_ZOOM,
                vector_max_zoom=schema.MAX_ZOOM,
            )
            for style in style_names()
        ]
        response = self._xml(request, qgis_connections(kind, sources))
        response.headers["Content-Disposition"] = (
            f'attachment; filename="fondplan-{kind}-connections.xml"'
        )
        return response


def raster_touched(z: int, x: int, y: int, size: int, expired: set[tuple[int, int, int]]) -> bool:
    """Whether the raster tile z/x/y of ``size`` px may draw one of the vector tiles
    ``expired``: MapLibre reads 512 px vector tiles, so a 256 px tile at z draws those of
    z - 1 and a 512 px one those of z (overzoomed past the last vector zoom); a symbol of a
    neighbouring vector tile may reach in, so those count too (both zooms, to be safe)."""
    for zoom in {max(0, min(z - 1, schema.MAX_ZOOM)), min(z, schema.MAX_ZOOM)}:
        shift = z - zoom
        vx, vy, last = x >> shift, y >> shift, (1 << zoom) - 1
        for i in range(max(0, vx - 1), min(last, vx + 1) + 1):
            for j in range(max(0, vy - 1), min(last, vy + 1) + 1):
                if (zoom, i, j) in expired:
                    return True
    return False


def _tile_request(style: str, z: int, x: int, y: int, size: int, scale: int) -> TileRequest:
    if size == 256 and z == 0:
        # MapLibre has no 256 px tile at zoom 0: draw the 512 px one at half the pixel ratio.
        return TileRequest(style, 0, 0, 0, tile_size=512, pixel_ratio=scale / 2)
    return TileRequest(style, z, x, y, tile_size=size, pixel_ratio=float(scale))


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter: 1/true/yes/on (or bare ``?name``) or 0/false/no/off."""
    value = request.query_params.get(name)
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"{name} must be 1 or 0 (true/false), not {value!r}")


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """Raster tiles (TileServer GL's URLs), WMTS capabilities and QGIS connection files.

    Full paths, so the group is listed before the ``/styles`` mount of the style documents.
    """
    service = RasterService(context)
    context.tiles.add_carry_hook(service.carry_over)
    context.on_shutdown.append(service.close)
    context.health["render"] = service.health
    context.metrics.add_gauges(service.gauges)
    methods = ["GET", "HEAD"]
    return [
        Route("/styles/wmts.xml", service.wmts_all, methods=methods),
        Route("/styles/{style}/wmts.xml", service.wmts, methods=methods),
        Route("/styles/{style}/tiles.json", service.tilejson, methods=methods),
        Route("/styles/{size:int}/{style}.json", service.tilejson, methods=methods),
        Route("/styles/{style}/{z:int}/{x:int}/{name}.png", service.tile, methods=methods),
        Route(
            "/styles/{style}/{size:int}/{z:int}/{x:int}/{name}.png", service.tile, methods=methods
        ),
        Route("/qgis-connections.xml", service.qgis, methods=methods),
    ]

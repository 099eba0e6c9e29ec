"""Town plan maps drawn by MapLibre Native (the raster pool), and the ``/townplans`` routes."""

from __future__ import annotations

import functools
import io
import json
import math
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cities.style import NO_TEXT, without_text
from osmimport.database import database_url
from osmimport.paths import styles_dir
from tileserver.context import AppContext
from tileserver.raster import (
    EARTH_CIRCUMFERENCE,
    MAPLIBRE_TILE_SIZE,
    MAX_IMAGE_SIDE,
    RasterError,
    RasterPool,
    mercator_to_lonlat,
    pool_for,
    render_image,
)
from tileserver.raster_worker import style_files
from tileserver.settings import Settings

#: Device pixels of one rendered piece; bigger maps are drawn piece by piece and assembled.
PIECE_SIDE = 4608
#: Device pixels drawn beyond each side of a piece and cut off, so labels at a seam are whole.
PIECE_OVERLAP = 256
#: Seconds one piece may take (a 4096 px piece of a dense town at 300 dpi takes a few seconds).
PIECE_TIMEOUT = 300.0

BBox = tuple[float, float, float, float]


def plan_styles() -> tempfile.TemporaryDirectory[str]:
    """A folder with every style, and each again without text (plans write the names)."""
    folder = tempfile.TemporaryDirectory(prefix="fondplan-plan-styles-")
    for name, path in style_files(styles_dir()).items():
        text = path.read_text(encoding="utf-8")
        (Path(folder.name) / path.name).write_text(text, encoding="utf-8")
        plain = without_text(json.loads(text))
        (Path(folder.name) / f"{name}{NO_TEXT}.json").write_text(
            json.dumps(plain), encoding="utf-8"
        )
    return folder


class MapLibreMapRenderer:
    """cities' ``MapRenderer`` over the raster pool: the named style at the requested DPI.

    Maps larger than :data:`PIECE_SIDE` device pixels are rendered in overlapping pieces (each
    well under MapLibre Native's 8192 px limit) and pasted together, so any paper prints at its
    full DPI. ``version`` (optional) returns the data version: when it changes the render
    process restarts, so MapLibre forgets the tiles of the old data.
    """

    def __init__(
        self,
        pool: RasterPool,
        *,
        version: Callable[[], str] | None = None,
        timeout: float = PIECE_TIMEOUT,
        owns_pool: bool = False,
        styles: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.pool = pool
        self.styles = styles
        self.version = version
        self.timeout = timeout
        self.owns_pool = owns_pool
        self._lock = threading.Lock()
        self._rendered_version: str | None = None

    @classmethod
    def for_database(cls, url: str, settings: Settings | None = None) -> MapLibreMapRenderer:
        """A renderer with its own render process reading the database at ``url``, configured
        by ``settings`` (default: every setting at its default)."""
        settings = settings or Settings.model_construct()
        # Two render threads: an atlas asks for two sheets at once.
        raster = settings.raster.model_copy(update={"threads": 2, "timeout": PIECE_TIMEOUT})
        styles = plan_styles()
        pool = pool_for(settings, database_url=url, raster=raster, styles_dir=styles.name)
        return cls(pool, owns_pool=True, styles=styles)

    def close(self) -> None:
        """Stop the render process if this renderer started it; remove its styles folder."""
        if self.owns_pool:
            self.pool.close()
        if self.styles is not None:
            self.styles.cleanup()

    def prepare(self) -> None:
        """Follow the data version and start the render process from this thread, before a
        plan: the plan renders from threads of its own, and a render process started by one
        of them would stop with it (its parent-death signal follows the starting thread)."""
        self._follow_version()
        self.pool.start()

    def __call__(
        self,
        *,
        style: str,
        bbox_3857: BBox,
        width_px: int,
        height_px: int,
        pixel_ratio: float,
    ) -> bytes:
        """The PNG bytes (``width_px`` × ``height_px``) of ``bbox_3857`` drawn with ``style``."""
        self._follow_version()
        xmin, ymin, xmax, ymax = bbox_3857
        metres_per_px = (xmax - xmin) / width_px
        # MapLibre's zoom counts CSS pixels: one of them is pixel_ratio device pixels.
        zoom = math.log2(EARTH_CIRCUMFERENCE / (MAPLIBRE_TILE_SIZE * metres_per_px * pixel_ratio))
        if max(width_px, height_px) <= PIECE_SIDE:
            png = self._piece(style, xmin, ymax, 0, 0, width_px, height_px, metres_per_px, zoom,
                              pixel_ratio)  # fmt: skip
            with Image.open(io.BytesIO(png)) as image:
                if image.size == (width_px, height_px):
                    return png
                return _png(_fit(image.convert("RGB"), width_px, height_px))
        canvas = Image.new("RGB", (width_px, height_px), "white")
        step = PIECE_SIDE - 2 * PIECE_OVERLAP
        for top in range(0, height_px, step):
            for left in range(0, width_px, step):
                inner_w, inner_h = min(step, width_px - left), min(step, height_px - top)
                x0, y0 = left - PIECE_OVERLAP, top - PIECE_OVERLAP
                w, h = inner_w + 2 * PIECE_OVERLAP, inner_h + 2 * PIECE_OVERLAP
                png = self._piece(style, xmin, ymax, x0, y0, w, h, metres_per_px, zoom,
                                  pixel_ratio)  # fmt: skip
                with Image.open(io.BytesIO(png)) as piece:
                    rgb = _fit(piece.convert("RGB"), w, h)
                    canvas.paste(
                        rgb.crop((PIECE_OVERLAP, PIECE_OVERLAP, PIECE_OVERLAP + inner_w,
                                  PIECE_OVERLAP + inner_h)),
                        (left, top),
                    )  # fmt: skip
        return _png(canvas)

    def _piece(
        self,
        style: str,
        xmin: float,
        ymax: float,
        left: int,
        top: int,
        width: int,
        height: int,
        metres_per_px: float,
        zoom: float,
        pixel_ratio: float,
    ) -> bytes:
        """The device-pixel rectangle (left, top, width, height) of the map, centred exactly."""
        cx = xmin + (left + width / 2) * metres_per_px
        cy = ymax - (top + height / 2) * metres_per_px
        css_w = max(1, min(round(width / pixel_ratio), int(MAX_IMAGE_SIDE / pixel_ratio)))
        css_h = max(1, min(round(height / pixel_ratio), int(MAX_IMAGE_SIDE / pixel_ratio)))
        return render_image(
            self.pool,
            style,
            width=css_w,
            height=css_h,
            center=mercator_to_lonlat(cx, cy),
            zoom=zoom,
            pixel_ratio=pixel_ratio,
            timeout=self.timeout,
        )

    def _follow_version(self) -> None:
        if self.version is None:
            return
        current = self.version()
        with self._lock:
            if self._rendered_version is not None and current != self._rendered_version:
                self.pool.restart()
            self._rendered_version = current


def _fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` at ``width`` × ``height``: cropped or padded by the pixel or two the CSS size
    rounding costs (resampling would blur the whole map), resized only beyond that."""
    if image.size == (width, height):
        return image
    if abs(image.width - width) > 2 or abs(image.height - height) > 2:
        return image.resize((width, height))
    canvas = Image.new("RGB", (width, height), "white")
    dx, dy = (width - image.width) // 2, (height - image.height) // 2
    canvas.paste(image, (dx, dy))
    return canvas


def _png(image: Image.Image) -> bytes:
    """PNG bytes, compressed lightly: the plan re-compresses the map when it embeds it."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def renderer_factory(url: str, settings: Settings) -> MapLibreMapRenderer:
    """The CLI's renderer factory: MapLibre Native reading the database at ``url``."""
    return MapLibreMapRenderer.for_database(url, settings)


def plan_process_renderer(
    url: str, settings: Settings, styles_dir: str, version: Callable[[], str]
) -> MapLibreMapRenderer:
    """The renderer of a server's plan process (built there): a render process of its own
    over the styles in ``styles_dir``, restarted when ``version`` changes."""
    timeout = settings.townplan.timeout
    raster = settings.raster.model_copy(update={"threads": 1, "timeout": timeout})
    # The plan process lowered its priority already; its render process inherits it.
    server = settings.server.model_copy(update={"background_nice": 0})
    settings = settings.model_copy(update={"server": server})
    pool = pool_for(settings, database_url=url, raster=raster, styles_dir=styles_dir)
    return MapLibreMapRenderer(pool, version=version, timeout=timeout, owns_pool=True)


#: The viewer loads this script; without town plans it adds nothing to the page.
_NO_PANEL = "/* Town plans are not available: this server serves a tiles file. */\n"


def unavailable_routes(tiles_file: Path) -> Sequence[BaseRoute]:
    """The ``/townplans`` paths of a server reading a tiles file: 404 with the reason.

    Town plans query the database (communes, streets, facilities), which a server started
    with ``--tiles`` does not have; the viewer's panel script is an empty one.
    """
    detail = (
        f"town plans need the database; this server serves the tiles file {tiles_file.name} "
        "(start it without --tiles to print town plans)"
    )

    def panel(request: Request) -> Response:
        return Response(_NO_PANEL, media_type="text/javascript")

    def unavailable(request: Request) -> Response:
        return JSONResponse({"detail": detail}, status_code=404)

    return [
        Route("/townplans/panel.js", panel, methods=["GET", "HEAD"]),
        Route("/townplans/{rest:path}", unavailable, methods=["GET", "HEAD"]),
    ]


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The ``/townplans`` route group: plans of the app's database drawn by MapLibre Native."""
    tiles_file = context.settings.server.tiles_file
    if tiles_file is not None:
        return unavailable_routes(tiles_file)
    from cities.planprocess import PlanProcesses
    from cities.routes import PlanService, townplan_routes

    url = database_url(context.settings.database, start=False)
    settings = context.settings.townplan
    # Made here, so the server removes it even when a plan process is killed.
    styles = plan_styles()
    factory = functools.partial(plan_process_renderer, url, context.settings, styles.name)
    processes = PlanProcesses(factory, settings.workers, context.settings.server.background_nice)
    service = PlanService(url, processes, settings)
    context.on_shutdown.append(service.close)
    context.on_shutdown.append(styles.cleanup)
    context.health["townplans"] = service.health
    context.metrics.add_gauges(service.gauges)
    return townplan_routes(service, context.limits["plans"].slot)


__all__ = ["MapLibreMapRenderer", "RasterError", "renderer_factory", "routes"]

"""Raster rendering: a bounded pool around a MapLibre Native render process, and static images."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from osmimport.children import lower_priority
from osmimport.errors import FondplanError
from osmimport.mercator import EARTH_CIRCUMFERENCE, lonlat_to_mercator, mercator_to_lonlat
from osmimport.paths import styles_dir as default_styles_dir
from tileserver.errors import NotFound, Unavailable
from tileserver.raster_worker import (
    UNKNOWN_STYLE,
    ImageRequest,
    TileRequest,
    WorkerConfig,
    style_files,
)
from tileserver.settings import DEFAULT_FONT_DIRS, RasterSettings, Settings, TileSettings

__all__ = [
    "EARTH_CIRCUMFERENCE",
    "ImageRequest",
    "RasterError",
    "RasterPool",
    "RasterSettings",
    "RenderBusy",
    "RenderFailed",
    "RenderTimeout",
    "TileRequest",
    "UnknownStyle",
    "bbox_view",
    "lonlat_to_mercator",
    "mercator_to_lonlat",
    "pool_for",
    "draw_attribution",
    "render_image",
]

log = logging.getLogger(__name__)

#: MapLibre zoom levels are defined for 512 px tiles.
MAPLIBRE_TILE_SIZE = 512
MAX_IMAGE_SIDE = 8192


class RasterError(FondplanError):
    """A raster could not be rendered."""


class UnknownStyle(RasterError, NotFound):
    """No style of that name exists."""


class RenderBusy(RasterError, Unavailable):
    """The render queue is full; the client should retry later."""


class RenderTimeout(RasterError, Unavailable):
    """A render took longer than the timeout; the render process was restarted."""


class RenderFailed(RasterError, Unavailable):
    """MapLibre Native failed, or the render process died during the render."""


class RasterPool:
    """A render process with a bounded queue; a crash or a timeout restarts it.

    Renders run in a child process so that a crash in native code costs one 503, not the
    server; the parent's threads and event loop never wait on it beyond ``timeout``.
    """

    def __init__(
        self,
        *,
        database_url: str | None = None,
        tiles_file: str | Path | None = None,
        styles_dir: str | Path | None = None,
        settings: RasterSettings | None = None,
        glyph_cache_dir: Path | Literal["default"] | None = "default",
        sprite_cache_dir: Path | Literal["default"] | None = "default",
        font_dirs: Sequence[Path] = DEFAULT_FONT_DIRS,
        tiles: TileSettings | None = None,
        nice: int = 0,
    ) -> None:
        self.settings = settings or RasterSettings()
        # "default": the disk caches of the default data folder (None: in memory only).
        defaults = Settings.model_construct()
        if glyph_cache_dir == "default":
            glyph_cache_dir = defaults.glyph_cache_dir()
        if sprite_cache_dir == "default":
            sprite_cache_dir = defaults.sprite_cache_dir()
        self._config = WorkerConfig(
            database_url=database_url,
            tiles_file=str(tiles_file) if tiles_file is not None else None,
            styles_dir=str(styles_dir if styles_dir is not None else default_styles_dir()),
            threads=self.settings.threads,
            tile_connections=self.settings.tile_connections,
            glyph_cache_dir=str(glyph_cache_dir) if glyph_cache_dir is not None else None,
            sprite_cache_dir=str(sprite_cache_dir) if sprite_cache_dir is not None else None,
            font_dirs=tuple(str(folder) for folder in font_dirs),
            tile_settings=(tiles or TileSettings()).model_dump(),
            nice=nice,
        )
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._pending: dict[int, Future[bytes]] = {}
        #: The render process (generation) each pending request was sent to.
        self._sent_to: dict[int, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._generation = 0
        #: Requests sent to the current render process.
        self._sent = 0
        self.restarts = 0
        #: Renders that took longer than the timeout (each stops the render process).
        self.timeouts = 0
        #: Render processes retired after ``max_renders`` renders.
        self.recycles = 0
        self.renders = 0

    @property
    def styles(self) -> list[str]:
        """The names of the styles this pool can render."""
        return list(style_files(self._config.styles_dir))

    @property
    def pid(self) -> int | None:
        """The render process's id, ``None`` before the first render."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def submit(self, request: TileRequest | ImageRequest) -> Future[bytes]:
        """Queue a render; raises ``RenderBusy`` when ``max_pending`` renders are waiting."""
        future: Future[bytes] = Future()
        with self._lock:
            if len(self._pending) >= self.settings.max_pending:
                raise RenderBusy("the render queue is full, retry later")
            if 0 < self.settings.max_renders <= self._sent:
                self._retire_locked()
            conn = self._ensure_started()
            request_id = next(self._ids)
            self._pending[request_id] = future
            self._sent_to[request_id] = self._generation
            self._sent += 1
            try:
                conn.send((request_id, request))
            except (OSError, ValueError) as exc:
                del self._pending[request_id]
                del self._sent_to[request_id]
                self._stop_locked()
                raise RenderFailed(f"the render process is gone: {exc}") from exc
        future.add_done_callback(lambda _: self._forget(request_id))
        return future

    def render(self, request: TileRequest | ImageRequest, timeout: float | None = None) -> bytes:
        """Render and wait; PNG bytes, or a ``RasterError``."""
        future = self.submit(request)
        limit = self.settings.timeout if timeout is None else timeout
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            self._on_timeout(future, limit)
            raise RenderTimeout(f"the render took longer than {limit:g} s") from None

    async def arender(self, request: TileRequest | ImageRequest) -> bytes:
        """Render without blocking the event loop; the same errors as ``render``."""
        # Sent from a worker thread: the send waits for the pool's lock (held while a render
        # process starts, retires or is stopped) and for room in the socket to the process.
        future = await asyncio.to_thread(self.submit, request)
        limit = self.settings.timeout
        wrapped = asyncio.wrap_future(future)
        # asyncio.wait, not wait_for: wait_for would cancel the future on timeout, and a
        # cancelled future looks done, so the hung process would never be stopped.
        done, _ = await asyncio.wait({wrapped}, timeout=limit)
        if not done:
            # The render fails when its process is stopped: nobody reads that any more.
            wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._on_timeout(future, limit)
            raise RenderTimeout(f"the render took longer than {limit:g} s")
        return wrapped.result()

    def start(self) -> None:
        """Start the render process now, from this thread (it stops when the thread ends)."""
        with self._lock:
            self._ensure_started()

    def restart(self) -> None:
        """Stop the render process (pending renders fail); the next render starts a fresh one."""
        with self._lock:
            self._stop_locked()

    def close(self) -> None:
        """Stop the render process for good; renders still pending (even retired ones) fail."""
        with self._lock:
            self._stop_locked()
            self._fail_pending_locked(None)

    def _on_timeout(self, future: Future[bytes], limit: float) -> None:
        # A native render cannot be interrupted: the only way to free its thread is a restart.
        with self._lock:
            self.timeouts += 1
            if not future.done() or future.cancelled():
                log.warning(
                    "a render took longer than %g s: render process %s replaced", limit, self.pid
                )
                self._stop_locked()

    def _forget(self, request_id: int) -> None:
        with self._lock:
            self._pending.pop(request_id, None)
            self._sent_to.pop(request_id, None)

    def _retire_locked(self) -> None:
        """Let the current render process finish its renders and exit; the next one starts."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        self._sent = 0
        if process is None or conn is None:
            return
        self.recycles += 1
        try:
            conn.send(None)  # the process stops reading, answers what it has, and exits
        except (OSError, ValueError):
            process.kill()
        # Its reader thread answers the last renders and reaps it; a process that does not
        # exit within a render timeout is killed.
        threading.Thread(
            target=self._reap,
            args=(process, self.settings.timeout + 5),
            name="fondplan-render-reaper",
            daemon=True,
        ).start()

    @staticmethod
    def _reap(process: subprocess.Popen[bytes], limit: float) -> None:
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _fail_pending_locked(self, generation: int | None) -> None:
        """Fail the renders sent to ``generation`` (``None``: every pending render)."""
        failed = [
            request_id
            for request_id in self._pending
            if generation is None or self._sent_to.get(request_id) == generation
        ]
        for request_id in failed:
            future = self._pending.pop(request_id)
            self._sent_to.pop(request_id, None)
            if not future.done():
                future.set_exception(RenderFailed("the render process stopped during the render"))

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._conn is not None and self._process.poll() is None:
            return self._conn
        if self._process is not None:
            self._stop_locked()
        parent_sock, child_sock = socket.socketpair()
        # A fresh interpreter (not fork, not multiprocessing's spawn): nothing of this
        # process's threads or __main__ is inherited or re-imported.
        process = subprocess.Popen(
            [sys.executable, "-m", "tileserver.raster_worker", str(child_sock.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=(child_sock.fileno(),),
        )
        # Niced from the start: its interpreter's start-up yields the CPU to the server too.
        lower_priority(process.pid, self._config.nice, os.getpid())
        child_sock.close()
        assert process.stdin is not None
        process.stdin.write(json.dumps(asdict(self._config)).encode())
        process.stdin.close()
        parent_conn = Connection(parent_sock.detach())
        self._process, self._conn = process, parent_conn
        self._generation += 1
        self._sent = 0
        reader = threading.Thread(
            target=self._read,
            args=(parent_conn, self._generation),
            name="fondplan-render-reader",
            daemon=True,
        )
        reader.start()
        return parent_conn

    def _stop_locked(self) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if process is not None:
            self.restarts += 1
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # Reaped later by the reaper thread; never blocks a shutdown.
                threading.Thread(target=self._reap, args=(process, 60.0), daemon=True).start()
        if conn is not None:
            conn.close()
        self._fail_pending_locked(self._generation)

    def _read(self, conn: Connection, generation: int) -> None:
        while True:
            try:
                request_id, ok, payload, message = conn.recv()
            except (EOFError, OSError, TypeError, ValueError):
                break
            with self._lock:
                future = self._pending.get(request_id)
            if future is None or future.done():
                continue
            if ok:
                self.renders += 1
                future.set_result(payload)
            elif payload == UNKNOWN_STYLE:
                future.set_exception(UnknownStyle(message))
            else:
                future.set_exception(RenderFailed(f"rendering failed: {message}"))
        with self._lock:
            if generation == self._generation and self._conn is conn:
                self._stop_locked()
            else:
                # A retired process exited: only its own unanswered renders fail.
                conn.close()
                self._fail_pending_locked(generation)


def pool_for(
    settings: Settings,
    *,
    database_url: str | None = None,
    tiles_file: Path | None = None,
    raster: RasterSettings | None = None,
    styles_dir: str | Path | None = None,
) -> RasterPool:
    """A render pool reading ``database_url`` or ``tiles_file``, configured by the settings
    tree (``raster`` replaces its raster section): disk caches, fonts and tile settings."""
    return RasterPool(
        database_url=database_url,
        tiles_file=tiles_file,
        styles_dir=styles_dir,
        settings=raster or settings.raster,
        glyph_cache_dir=settings.glyph_cache_dir(),
        sprite_cache_dir=settings.sprite_cache_dir(),
        font_dirs=settings.assets.font_dirs,
        tiles=settings.tiles,
        nice=settings.server.background_nice,
    )


@dataclass(frozen=True)
class View:
    """Where a static image looks: centre in degrees and MapLibre zoom."""

    lon: float
    lat: float
    zoom: float


def bbox_view(bbox_3857: tuple[float, float, float, float], width: int, height: int) -> View:
    """The centre and zoom that fit ``bbox_3857`` (EPSG:3857 metres) into width x height px."""
    west, south, east, north = bbox_3857
    if not (east > west and north > south):
        raise RasterError("the bbox must be west,south,east,north with west < east, south < north")
    if width <= 0 or height <= 0:
        raise RasterError("the image size must be positive")
    scale = max((east - west) / width, (north - south) / height)  # metres per pixel
    zoom = math.log2(EARTH_CIRCUMFERENCE / (MAPLIBRE_TILE_SIZE * scale))
    lon, lat = mercator_to_lonlat((west + east) / 2, (south + north) / 2)
    return View(lon=lon, lat=lat, zoom=zoom)


def render_image(
    pool: RasterPool,
    style: str,
    *,
    width: int,
    height: int,
    bbox_3857: tuple[float, float, float, float] | None = None,
    center: tuple[float, float] | None = None,
    zoom: float | None = None,
    pixel_ratio: float = 1.0,
    timeout: float | None = None,
) -> bytes:
    """A PNG of ``style``: either fitted to ``bbox_3857`` or at ``center`` (lon, lat) + ``zoom``.

    ``zoom`` is MapLibre's (512 px tiles); the PNG is ``width * pixel_ratio`` pixels wide.
    """
    if max(width, height) * pixel_ratio > MAX_IMAGE_SIDE:
        raise RasterError(f"the image may be at most {MAX_IMAGE_SIDE} pixels on a side")
    if not 0 < pixel_ratio <= 8:
        raise RasterError("the pixel ratio must be in (0, 8]")
    if bbox_3857 is not None:
        view = bbox_view(bbox_3857, width, height)
    elif center is not None and zoom is not None:
        view = View(lon=center[0], lat=center[1], zoom=zoom)
    else:
        raise RasterError("give either a bbox or a centre and a zoom")
    request = ImageRequest(
        style=style,
        lon=view.lon,
        lat=view.lat,
        zoom=view.zoom,
        width=width,
        height=height,
        pixel_ratio=pixel_ratio,
    )
    return pool.render(request, timeout=timeout)


def describe(pool: RasterPool) -> dict[str, Any]:
    """Counters for health and metrics."""
    return {
        "renders": pool.renders,
        "restarts": pool.restarts,
        "timeouts": pool.timeouts,
        "recycles": pool.recycles,
        "pending": len(pool._pending),
        "pid": pool.pid,
    }


#: The text drawn in the image corner on request (the ODbL asks every map to credit OSM).
ATTRIBUTION_TEXT = "© OpenStreetMap contributors"
#: Fontstack of the corner text, looked up like the styles' fonts.
ATTRIBUTION_FONTS = "Noto Sans Regular,DejaVu Sans Book"


def draw_attribution(
    png: bytes,
    pixel_ratio: float = 1.0,
    text: str = ATTRIBUTION_TEXT,
    font_dirs: Sequence[Path] = DEFAULT_FONT_DIRS,
) -> bytes:
    """``png`` with ``text`` on a light box in the bottom-right corner, sized by ``pixel_ratio``.

    For clients that show no attribution of their own (plain image viewers, some GIS tools).
    The text is shrunk to fit images narrower than it.
    """
    import io

    from PIL import Image, ImageDraw, ImageFont

    from tileserver.glyphs import builder_for

    with Image.open(io.BytesIO(png)) as opened:
        mode = opened.mode if opened.mode in ("RGB", "RGBA") else "RGBA"
        image = opened.convert("RGBA")
    font_path = builder_for(None, font_dirs).resolve(ATTRIBUTION_FONTS)[0].path
    size = max(6, round(10 * pixel_ratio))
    pad = max(1, round(2 * pixel_ratio))
    while True:
        font = ImageFont.truetype(str(font_path), size)
        left, top, right, bottom = font.getbbox(text)
        if right - left + 2 * pad <= image.width or size <= 6:
            break
        size -= 1
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = image.width - box_w, image.height - box_h
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((x0, y0, image.width, image.height), fill=(255, 255, 255, 191))
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=(51, 51, 51, 255))
    out = io.BytesIO()
    Image.alpha_composite(image, overlay).convert(mode).save(out, format="PNG")
    return out.getvalue()

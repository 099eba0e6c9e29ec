"""The render process: MapLibre Native (mapli) drawing styles from the database, no HTTP."""

from __future__ import annotations

import io
import json
import math
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osmimport.lru import LRUCache
from osmimport.mercator import tile_lonlat

if TYPE_CHECKING:
    from tileserver.sources import TileSource

#: The URL scheme the styles use for everything the server itself provides.
SCHEME = "fondplan"


@dataclass(frozen=True)
class WorkerConfig:
    """What a render process needs; plain data so it crosses the process boundary."""

    database_url: str | None
    styles_dir: str
    #: A PMTiles/MBTiles file served instead of the database.
    tiles_file: str | None = None
    threads: int = 2
    #: Decoded vector tiles kept by the process, shared by every style.
    tile_cache_size: int = 512
    #: Vector tiles read from the source at once (database connections of the process).
    tile_connections: int = 4
    #: The glyph disk cache shared with the server and other render processes.
    glyph_cache_dir: str | None = None
    #: The sprite disk cache shared with the server and other render processes.
    sprite_cache_dir: str | None = None
    #: Folders of the fonts glyphs are drawn from.
    font_dirs: tuple[str, ...] = ()
    #: The server's tile settings (``TileSettings`` fields), for cutting tiles the same way.
    tile_settings: dict[str, Any] = field(default_factory=dict)
    #: Niceness the process adds to its own (a lower CPU priority than the server's).
    nice: int = 0


@dataclass(frozen=True)
class TileRequest:
    """One XYZ tile of a style; ``tile_size`` is 256 or 512 logical pixels."""

    style: str
    z: int
    x: int
    y: int
    tile_size: int = 256
    pixel_ratio: float = 1.0


@dataclass(frozen=True)
class ImageRequest:
    """A static image centred on a point at a MapLibre (512 px based) zoom."""

    style: str
    lon: float
    lat: float
    zoom: float
    width: int
    height: int
    pixel_ratio: float = 1.0


#: Error kinds sent back to the parent; it maps them to its exceptions.
UNKNOWN_STYLE = "unknown_style"
RENDER_FAILED = "render_failed"


class Resources:
    """Answers the renderer's ``fondplan://`` requests: TileJSON, tiles, glyphs and sprites."""

    def __init__(self, config: WorkerConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._tiles: LRUCache[tuple[int, int, int], bytes] = LRUCache(config.tile_cache_size)
        self._tile_source: TileSource | None = None
        self._connections = threading.BoundedSemaphore(max(1, config.tile_connections))
        from tileserver.glyphs import builder_for

        cache_dir = Path(config.glyph_cache_dir) if config.glyph_cache_dir else None
        font_dirs = [Path(folder) for folder in config.font_dirs]
        self._glyphs = builder_for(cache_dir, *([font_dirs] if font_dirs else []))
        self._sprite_cache = Path(config.sprite_cache_dir) if config.sprite_cache_dir else None

    def handle(self, url: str) -> bytes | None:
        """The body for ``url`` (``None`` means no content, e.g. an empty tile)."""
        path = url.split("://", 1)[1].split("?", 1)[0]
        kind, _, rest = path.partition("/")
        if kind == "tiles":
            return self._tiles_resource(rest)
        if kind == "fonts":
            fontstack, _, file = rest.rpartition("/")
            start, _, end = file.removesuffix(".pbf").partition("-")
            return self._glyphs.glyph_range(_unquote(fontstack), int(start), int(end))
        if kind == "sprites":
            return self._sprite(rest)
        raise LookupError(f"no such resource: {url}")

    def _tiles_resource(self, rest: str) -> bytes | None:
        if rest.endswith(".json"):
            name = rest.removesuffix(".json")
            return json.dumps(
                {
                    "tilejson": "3.0.0",
                    "tiles": [f"{SCHEME}://tiles/{name}/{{z}}/{{x}}/{{y}}.mvt"],
                    "minzoom": 0,
                    "maxzoom": _max_zoom(),
                }
            ).encode()
        parts = rest.rsplit("/", 3)
        z, x, y = int(parts[1]), int(parts[2]), int(parts[3].split(".", 1)[0])
        return self.tile(z, x, y)

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The MVT of z/x/y, from the process's cache or the database."""
        key = (z, x, y)
        cached = self._tiles.get(key)
        if cached is not None:
            return cached or None
        data = self._read_tile(z, x, y)
        self._tiles.put(key, data)
        return data or None

    def _read_tile(self, z: int, x: int, y: int) -> bytes:
        source = self._source()
        # MapLibre asks for many tiles at once; psycopg2's pool fails instead of waiting.
        with self._connections:
            return source.tile(z, x, y)[1]

    def _source(self) -> TileSource:
        with self._lock:
            if self._tile_source is None:
                self._tile_source = open_tile_source(self._config)
            return self._tile_source

    def _sprite(self, rest: str) -> bytes:
        from tileserver.sprites import sprite

        name, _, ext = rest.rpartition(".")
        ratio = 1
        if name.endswith("@2x"):
            name, ratio = name.removesuffix("@2x"), 2
        sprite_json, sprite_png = sprite(name, ratio, self._sprite_cache)
        if ext == "json":
            return sprite_json if isinstance(sprite_json, bytes) else sprite_json.encode()
        return sprite_png

    def close(self) -> None:
        """Close the database connections."""
        if self._tile_source is not None:
            self._tile_source.close()


def open_tile_source(config: WorkerConfig) -> TileSource:
    """The vector tiles the renderer reads: the server's own source, opened in this process."""
    from tileserver.settings import TileSettings
    from tileserver.sources import PostGISSource, archive_source

    source: TileSource
    if config.tiles_file:
        source = archive_source(Path(config.tiles_file))
    elif config.database_url:
        source = PostGISSource(
            config.database_url,
            TileSettings(**config.tile_settings),
            pool_size=max(1, config.tile_connections),
            # Its database work is background work, as niced as the renders are (a town plan
            # child's render process inherits the plan child's niceness rather than adding).
            backend_nice=os.getpriority(os.PRIO_PROCESS, 0),
        )
    else:
        raise LookupError("no tile source: neither a database nor a tiles file")
    source.open()
    return source


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _max_zoom() -> int:
    from osmimport.schema import MAX_ZOOM

    return MAX_ZOOM


def style_files(styles_dir: str | Path) -> dict[str, Path]:
    """Style name → file, for every ``*.json`` style in ``styles_dir``."""
    folder = Path(styles_dir)
    return {path.stem: path for path in sorted(folder.glob("*.json"))}


#: Logical pixels drawn around a block of raster tiles and cut away: a label crossing a tile's
#: edge is drawn whole from an anchor in the margin, as the neighbouring tile draws it.
TILE_MARGIN = 96
#: Tiles are drawn in aligned blocks of METATILE x METATILE (one render, then cut), so the
#: tiles of a block always agree and a client's neighbouring requests share one render.
METATILE = 2


@dataclass(frozen=True)
class Block:
    """The aligned block of tiles one render draws: its corner tile and size in tiles."""

    style: str
    z: int
    x: int
    y: int
    size: int
    tile_size: int
    pixel_ratio: float


def block_of(tile: TileRequest, margin: int = TILE_MARGIN) -> Block | None:
    """The block drawn for ``tile``; None where its margin would cross a pole (MapLibre would
    shift such a view), then the tile is drawn alone."""
    n = 2**tile.z
    size = METATILE if n >= METATILE else 1
    bx, by = tile.x - tile.x % size, tile.y - tile.y % size
    if by * tile.tile_size < margin or (n - by - size) * tile.tile_size < margin:
        return None
    return Block(tile.style, tile.z, bx, by, size, tile.tile_size, tile.pixel_ratio)


def block_view(block: Block) -> tuple[float, float, float]:
    """(lon, lat, MapLibre zoom) of the view centred on ``block``."""
    centre = block.size / 2
    lon, lat = tile_lonlat(block.z, block.x + centre, block.y + centre)
    return lon, lat, block.z + math.log2(block.tile_size / 512)


class TileRenderer:
    """Draws raster tiles block by block, keeping the last blocks' images (64 MB) for their other
    tiles.

    Rendering a tile alone would place each label for that tile only, so one crossing its edge
    would be cut there and drawn or dropped differently next door. The render process is
    replaced when the data changes, and these images with it.
    """

    def __init__(self, pool: Any, margin: int = TILE_MARGIN, budget: int = 64 << 20) -> None:
        self._pool = pool
        self._margin = margin
        #: Block images kept, bounded by their bytes (RGBA: 4 bytes a pixel).
        self._images: LRUCache[Block, Any] = LRUCache(budget, _image_bytes)
        self._lock = threading.Lock()
        #: One lock per block being drawn: its other tiles wait for that render.
        self._drawing: dict[Block, threading.Lock] = {}

    def render(self, tile: TileRequest) -> bytes:
        """The PNG of ``tile``."""
        block = block_of(tile, self._margin)
        if block is None:
            return bytes(
                self._pool.render_tile(
                    tile.style,
                    z=tile.z,
                    x=tile.x,
                    y=tile.y,
                    tile_size=tile.tile_size,
                    pixel_ratio=tile.pixel_ratio,
                )
            )
        image = self._block_image(block)
        start = round(self._margin * tile.pixel_ratio)
        size = round(tile.tile_size * tile.pixel_ratio)
        left = start + (tile.x - block.x) * size
        top = start + (tile.y - block.y) * size
        out = io.BytesIO()
        # zlib level 3: as small as the default here, and several times faster to write.
        image.crop((left, top, left + size, top + size)).save(out, format="PNG", compress_level=3)
        return out.getvalue()

    def _block_image(self, block: Block) -> Any:
        with self._lock:
            drawing = self._drawing.setdefault(block, threading.Lock())
        with drawing:
            image = self._images.get(block)
            if image is not None:
                return image
            image = self._draw(block)
            self._images.put(block, image)
            with self._lock:
                self._drawing.pop(block, None)
            return image

    def _draw(self, block: Block) -> Any:
        from PIL import Image

        lon, lat, zoom = block_view(block)
        side = block.size * block.tile_size + 2 * self._margin
        png = self._pool.render(
            block.style,
            lon=lon,
            lat=lat,
            zoom=zoom,
            width=side,
            height=side,
            pixel_ratio=block.pixel_ratio,
        )
        with Image.open(io.BytesIO(png)) as opened:
            opened.load()
            return opened.copy()


def _image_bytes(image: Any) -> int:
    width, height = image.size
    return int(width * height * 4)


def serve(conn: Connection, config: WorkerConfig) -> None:
    """Process entry point: answer render requests from ``conn`` until it closes."""
    # Headless: Mesa's EGL without any display server.
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    import mapli

    resources = Resources(config)

    def handler(request: mapli.ResourceRequest) -> mapli.Response | bytes:
        try:
            data = resources.handle(request.url)
        except LookupError as exc:
            return mapli.Response.error(mapli.ErrorReason.NOT_FOUND, str(exc))
        return mapli.Response.no_content() if data is None else data

    mapli.register_scheme_handler(SCHEME, handler)
    pool = mapli.RenderPool(workers=config.threads)
    tiles = TileRenderer(pool)
    styles = style_files(config.styles_dir)
    for name, path in styles.items():
        pool.register_style(name, json=path.read_text(encoding="utf-8"))

    send_lock = threading.Lock()

    def reply(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    def run(request_id: int, request: TileRequest | ImageRequest) -> None:
        if request.style not in styles:
            reply((request_id, False, UNKNOWN_STYLE, f"no such style: {request.style}"))
            return
        render: Callable[[], bytes]
        if isinstance(request, TileRequest):
            tile = request

            def render() -> bytes:
                return tiles.render(tile)
        else:
            image = request

            def render() -> bytes:
                return pool.render(
                    image.style,
                    lon=image.lon,
                    lat=image.lat,
                    zoom=image.zoom,
                    width=image.width,
                    height=image.height,
                    pixel_ratio=image.pixel_ratio,
                )

        try:
            png = render()
        except (mapli.MapliError, ValueError) as exc:
            reply((request_id, False, RENDER_FAILED, str(exc)))
        except Exception:  # noqa: BLE001 - any failure must answer, never hang the caller
            reply((request_id, False, RENDER_FAILED, traceback.format_exc(limit=3)))
        else:
            reply((request_id, True, png, ""))

    # More threads than renderers so requests queue inside mapli, not in the pipe.
    with ThreadPoolExecutor(max_workers=config.threads * 4) as executor:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            request_id, request = message
            executor.submit(run, request_id, request)
    resources.close()


def main(argv: list[str]) -> int:
    """``python -m tileserver.raster_worker FD``: the config as JSON on stdin, requests on FD."""
    from osmimport.children import lower_priority
    from tileserver.server import die_with_parent

    # The render process never outlives the server that started it.
    die_with_parent(os.getppid())
    config = WorkerConfig(**json.loads(sys.stdin.read()))
    # Already set by the server as it started this process (tileserver.raster); kept here for
    # a process started otherwise.
    lower_priority(0, config.nice, os.getppid())
    sock = socket.socket(fileno=int(argv[0]))
    serve(Connection(sock.detach()), config)
    return 0


if __name__ == "__main__":
    # Run the imported module, not __main__, so pickled requests match its classes.
    from tileserver import raster_worker

    raise SystemExit(raster_worker.main(sys.argv[1:]))

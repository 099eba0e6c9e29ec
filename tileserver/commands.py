"""The tile server's commands: ``fondplan serve``, ``fondplan seed``, ``fondplan export``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from osmimport.command import Command
from osmimport.errors import UsageError
from osmimport.schema import MAX_ZOOM
from tileserver.app import build_service
from tileserver.errors import BadRequest
from tileserver.export import export, seed
from tileserver.service import TileService
from tileserver.settings import CacheSettings, ServerSettings, Settings
from tileserver.tiling import BBox, parse_bbox_arg


def _zoom(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_ZOOM:
        raise argparse.ArgumentTypeError(f"zoom must be 0 to {MAX_ZOOM}")
    return value


def _add_area_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bbox", metavar="W,S,E,N", help="area in degrees (default: the imported data's)"
    )
    parser.add_argument("--minzoom", type=_zoom, default=0, help="first zoom (default 0)")
    parser.add_argument(
        "--maxzoom", type=_zoom, default=MAX_ZOOM, help=f"last zoom (default {MAX_ZOOM})"
    )
    parser.add_argument(
        "--jobs", type=int, default=max(2, os.cpu_count() or 2), help="tiles cut in parallel"
    )


def _area(args: argparse.Namespace, service: TileService) -> BBox:
    if args.minzoom > args.maxzoom:
        raise UsageError("--minzoom must not be above --maxzoom")
    if args.bbox:
        try:
            return parse_bbox_arg(args.bbox)
        except BadRequest as exc:
            raise UsageError(str(exc)) from exc
    bbox = service.bbox()
    if bbox is None or service.version == "none":
        raise UsageError("no data imported yet: run `fondplan import FILE` or give --bbox")
    return bbox


class ServeCommand:
    """Serve vector tiles, styles, fonts, sprites and the map viewer over HTTP.

    Without --tiles, tiles are cut from the database (FONDPLAN_DATABASE_URL or the embedded
    PostGIS); with --tiles FILE.pmtiles|FILE.mbtiles, the file is served and no database is used.
    """

    name: ClassVar[str] = "serve"
    help: ClassVar[str] = "run the HTTP server (vector tiles, styles, viewer)"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare where to listen and what to serve."""
        defaults = ServerSettings()
        parser.add_argument("--host", default=defaults.host, help=f"default {defaults.host}")
        parser.add_argument(
            "--port", type=int, default=defaults.port, help=f"default {defaults.port}"
        )
        parser.add_argument(
            "--workers", type=int, default=defaults.workers, help="server processes (default 1)"
        )
        parser.add_argument(
            "--tiles", type=Path, metavar="FILE", help="serve a .pmtiles or .mbtiles file instead"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Start uvicorn with the app factory (settings come from the environment)."""
        if args.tiles is not None:
            if args.tiles.suffix.lower() not in (".pmtiles", ".mbtiles"):
                raise UsageError(f"{args.tiles}: expected a .pmtiles or .mbtiles file")
            if not args.tiles.is_file():
                raise UsageError(f"{args.tiles}: no such file")
            # Worker processes read their settings from the environment.
            os.environ["FONDPLAN_TILES_FILE"] = str(args.tiles.resolve())
        if args.workers < 1:
            raise UsageError("--workers must be at least 1")
        settings = ServerSettings()
        shared = None
        if args.workers > 1:
            # Workers stop when this process is gone (tileserver.server.die_with_parent) and
            # share their metrics through a folder of this run.
            os.environ["FONDPLAN_SUPERVISOR_PID"] = str(os.getpid())
            shared = tempfile.TemporaryDirectory(prefix="fondplan-metrics-")
            os.environ["FONDPLAN_METRICS_DIR"] = shared.name
        try:
            self._run_uvicorn(args, settings)
        finally:
            if shared is not None:
                shared.cleanup()
        return 0

    def _run_uvicorn(self, args: argparse.Namespace, settings: ServerSettings) -> None:
        import uvicorn

        uvicorn.run(
            "tileserver.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            # Forwarded headers are checked by the app itself (FONDPLAN_FORWARDED_ALLOW_IPS).
            proxy_headers=False,
            access_log=False,
            http="tileserver.server:HeaderTimeoutProtocol",
            timeout_keep_alive=settings.keep_alive,
            limit_concurrency=settings.limit_concurrency,
            timeout_graceful_shutdown=settings.graceful_shutdown,
            timeout_worker_healthcheck=settings.worker_healthcheck,
        )


def _batch_service(*, memory_bytes: int) -> TileService:
    settings = Settings(cache=CacheSettings(memory_bytes=memory_bytes))
    service = build_service(settings)
    service.start(watch=False)
    return service


class SeedCommand:
    """Cut every tile of an area into the disk cache, so the server answers them at once.

    The cache is keyed by data version: after a new import, seed again.
    """

    name: ClassVar[str] = "seed"
    help: ClassVar[str] = "fill the tile cache for an area and zoom range"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the area and zooms."""
        _add_area_args(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Seed, with progress on stderr and a summary on stdout."""
        if not CacheSettings().disk:
            raise UsageError("the disk cache is off (FONDPLAN_CACHE_DISK=false): nothing to fill")
        service = _batch_service(memory_bytes=0)
        try:
            bbox = _area(args, service)
            summary = seed(service, bbox, args.minzoom, args.maxzoom, jobs=args.jobs)
        finally:
            service.stop()
        print(summary.line("seeded"))
        return 0


class ExportCommand:
    """Write the tiles of an area to a PMTiles v3 or MBTiles file (gzipped MVT).

    The file can be served without a database (`fondplan serve --tiles FILE`) or from a CDN.
    """

    name: ClassVar[str] = "export"
    help: ClassVar[str] = "export tiles to OUT.pmtiles or OUT.mbtiles"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the output file, area and zooms."""
        parser.add_argument("out", type=Path, help="OUT.pmtiles or OUT.mbtiles")
        _add_area_args(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Export, with progress on stderr and a summary on stdout."""
        if args.out.suffix.lower() not in (".pmtiles", ".mbtiles"):
            raise UsageError(f"{args.out}: the output must end in .pmtiles or .mbtiles")
        service = _batch_service(memory_bytes=0)
        try:
            bbox = _area(args, service)
            summary = export(service, args.out, bbox, args.minzoom, args.maxzoom, jobs=args.jobs)
        finally:
            service.stop()
        print(summary.line(f"exported {args.out}"))
        return 0


COMMANDS: list[Command] = [ServeCommand(), SeedCommand(), ExportCommand()]

"""The tile server's commands: ``fondplan serve``, ``fondplan seed``, ``fondplan export``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from osmimport.command import Command
from osmimport.dataversion import NO_DATA
from osmimport.errors import UsageError
from osmimport.mercator import BBox, parse_bbox
from osmimport.schema import MAX_ZOOM
from routing.server import RoutingServerProcess
from routing.settings import RoutingSettings
from tileserver.app import build_service
from tileserver.export import export, seed
from tileserver.service import TileService
from tileserver.settings import ServerSettings, Settings


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
        return parse_bbox(args.bbox, "--bbox")
    bbox = service.bbox()
    if bbox is None or service.version == NO_DATA:
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
        parser.add_argument("--host", help=f"default FONDPLAN_HOST, else {defaults.host}")
        parser.add_argument("--port", type=int, help=f"default FONDPLAN_PORT, else {defaults.port}")
        parser.add_argument(
            "--workers", type=int, help="server processes (default FONDPLAN_WORKERS, else 1)"
        )
        parser.add_argument(
            "--tiles", type=Path, metavar="FILE", help="serve a .pmtiles or .mbtiles file instead"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Start uvicorn with the app of the settings (and the options given)."""
        settings: Settings = args.settings
        chosen: dict[str, object] = {
            name: getattr(args, name)
            for name in ("host", "port", "workers")
            if getattr(args, name) is not None
        }
        if args.tiles is not None:
            if args.tiles.suffix.lower() not in (".pmtiles", ".mbtiles"):
                raise UsageError(f"{args.tiles}: expected a .pmtiles or .mbtiles file")
            if not args.tiles.is_file():
                raise UsageError(f"{args.tiles}: no such file")
            chosen["tiles_file"] = args.tiles.resolve()
        server = settings.server.model_copy(update=chosen)
        if server.workers < 1:
            raise UsageError("--workers must be at least 1")
        settings = settings.model_copy(update={"server": server})
        routing = _routing_server(settings)
        if routing is not None:
            routing.start()
            section = settings.routing.model_copy(update={"routing_server": routing.path})
            settings = settings.model_copy(update={"routing": section})
            os.environ[RoutingSettings.variable("routing_server")] = str(routing.path)
        try:
            self._serve(settings)
        finally:
            if routing is not None:
                routing.stop()
        return 0

    def _serve(self, settings: Settings) -> None:
        server = settings.server
        if server.workers == 1:
            from tileserver.app import create_app

            self._run_uvicorn(create_app(settings), server)
            return
        # Each worker process builds its own app (uvicorn imports the factory there) from the
        # environment it inherits: what this command decided goes along in it.
        if server.tiles_file is not None:
            os.environ[ServerSettings.variable("tiles_file")] = str(server.tiles_file)
        # Each sizes its share of the machine by their number (LimitSettings.limit).
        os.environ[ServerSettings.variable("workers")] = str(server.workers)
        # Workers stop when this process is gone (tileserver.server.die_with_parent) and
        # share their metrics through a folder of this run.
        os.environ[ServerSettings.variable("supervisor_pid")] = str(os.getpid())
        with tempfile.TemporaryDirectory(prefix="fondplan-metrics-") as shared:
            os.environ[ServerSettings.variable("metrics_dir")] = shared
            self._run_uvicorn("tileserver.app:create_app", server)

    def _run_uvicorn(self, app: object, server: ServerSettings) -> None:
        import uvicorn

        uvicorn.run(
            app,  # type: ignore[arg-type]
            factory=isinstance(app, str),
            host=server.host,
            port=server.port,
            workers=server.workers,
            # Forwarded headers are checked by the app itself (FONDPLAN_FORWARDED_ALLOW_IPS).
            proxy_headers=False,
            access_log=False,
            http="tileserver.server:HeaderTimeoutProtocol",
            timeout_keep_alive=server.keep_alive,
            limit_concurrency=server.limit_concurrency,
            timeout_graceful_shutdown=server.graceful_shutdown,
            timeout_worker_healthcheck=server.worker_healthcheck,
        )


def _routing_server(settings: Settings) -> RoutingServerProcess | None:
    """The routing server all workers share, unless routes are not served, answered by a
    routing server given, or built by each worker (FONDPLAN_ROUTING_SHARED_SERVER=false)."""
    routing = settings.routing
    if (
        settings.server.tiles_file is not None
        or "routing" in settings.server.disable
        or routing.routing_server is not None
        or not routing.routing_shared_server
    ):
        return None
    return RoutingServerProcess(settings.database, routing, settings.server.routing_nice)


def _batch_service(settings: Settings) -> TileService:
    """The tile service of a batch command: no memory cache (each tile is cut once)."""
    cache = settings.cache.model_copy(update={"memory_bytes": 0})
    service = build_service(settings.model_copy(update={"cache": cache}))
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
        if not args.settings.cache.disk:
            raise UsageError("the disk cache is off (FONDPLAN_CACHE_DISK=false): nothing to fill")
        service = _batch_service(args.settings)
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
        service = _batch_service(args.settings)
        try:
            bbox = _area(args, service)
            summary = export(service, args.out, bbox, args.minzoom, args.maxzoom, jobs=args.jobs)
        finally:
            service.stop()
        print(summary.line(f"exported {args.out}"))
        return 0


COMMANDS: list[Command] = [ServeCommand(), SeedCommand(), ExportCommand()]

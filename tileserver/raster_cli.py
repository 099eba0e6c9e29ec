"""``fondplan render``: a static map image of a bounding box, drawn like the raster tiles."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import ClassVar

from osmimport.database import database_url
from osmimport.errors import UsageError
from osmimport.mercator import (
    EARTH_CIRCUMFERENCE,
    MAX_LAT,
    lonlat_to_mercator,
    mercator_to_lonlat,
    parse_bbox,
)
from tileserver.raster import (
    MAPLIBRE_TILE_SIZE,
    RasterError,
    pool_for,
    render_image,
)


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` in pixels."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT in pixels, got {text!r}") from None
    if not (0 < width <= 8192 and 0 < height <= 8192):
        raise UsageError("--size must be between 1x1 and 8192x8192")
    return width, height


class RenderCommand:
    """Render a style over a bounding box to a PNG file.

    With --zoom (web map zoom, 256 px tiles) the image shows the bbox's centre at that zoom
    and --size sets the image size (default: the bbox's size at that zoom). Without --zoom the
    bbox is fitted into --size.

    fondplan render --style NAME --bbox 9.50,47.12,9.54,47.15 --zoom 15 -o map.png
    """

    name: ClassVar[str] = "render"
    help: ClassVar[str] = "render a static map image (PNG) of a bbox"

    def add_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the style, area, zoom, size and output."""
        parser.add_argument("--style", required=True, help="style name (a file of styles/)")
        parser.add_argument("--bbox", required=True, help="W,S,E,N in degrees (WGS84)")
        parser.add_argument("--zoom", type=float, help="zoom level of 256 px web map tiles")
        parser.add_argument("--size", help="WIDTHxHEIGHT in pixels (default 1024x768)")
        parser.add_argument("--ratio", type=float, default=1.0, help="pixel ratio (2 = hi-dpi)")
        parser.add_argument("-o", "--output", required=True, type=Path, help="PNG file to write")
        parser.add_argument("--tiles-file", type=Path, help="read a PMTiles/MBTiles file")

    def run(self, args: argparse.Namespace) -> int:
        """Render and write the file."""
        west, south, east, north = parse_bbox(args.bbox, "--bbox", MAX_LAT)
        x0, y0 = lonlat_to_mercator(west, south)
        x1, y1 = lonlat_to_mercator(east, north)
        bbox = (x0, y0, x1, y1)
        if args.zoom is not None and not 0 <= args.zoom <= 22:
            raise UsageError("--zoom must be between 0 and 22")
        if args.size:
            width, height = parse_size(args.size)
        elif args.zoom is not None:
            metres_per_px = EARTH_CIRCUMFERENCE / (256 * 2**args.zoom)
            width = max(1, round((x1 - x0) / metres_per_px))
            height = max(1, round((y1 - y0) / metres_per_px))
            if max(width, height) > 8192:
                raise UsageError("the bbox is larger than 8192 px at that zoom: give --size")
        else:
            width, height = 1024, 768
        settings = args.settings
        if args.tiles_file is not None:
            pool = pool_for(settings, tiles_file=args.tiles_file)
        else:
            pool = pool_for(settings, database_url=database_url(settings.database))
        if args.style not in pool.styles:
            raise UsageError(f"no such style: {args.style} (styles: {', '.join(pool.styles)})")
        try:
            if args.zoom is not None:
                # Web map zoom (256 px) is MapLibre zoom (512 px) + 1.
                centre = ((west + east) / 2, _mid_latitude(south, north))
                zoom = args.zoom - math.log2(MAPLIBRE_TILE_SIZE / 256)
                png = render_image(
                    pool,
                    args.style,
                    width=width,
                    height=height,
                    center=centre,
                    zoom=zoom,
                    pixel_ratio=args.ratio,
                )
            else:
                png = render_image(
                    pool,
                    args.style,
                    width=width,
                    height=height,
                    bbox_3857=bbox,
                    pixel_ratio=args.ratio,
                )
        except RasterError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            pool.close()
        args.output.write_bytes(png)
        print(f"{args.output}: {round(width * args.ratio)}x{round(height * args.ratio)} px")
        return 0


def _mid_latitude(south: float, north: float) -> float:
    """The latitude halfway between ``south`` and ``north`` in Web Mercator."""
    y = (lonlat_to_mercator(0, south)[1] + lonlat_to_mercator(0, north)[1]) / 2
    return mercator_to_lonlat(0, y)[1]


COMMANDS = [RenderCommand()]

"""Web Mercator tile arithmetic: which tiles cover a bounding box."""

from __future__ import annotations

import math
from collections.abc import Iterator

from tileserver.errors import BadRequest

#: Web Mercator stops at this latitude.
MAX_LAT = 85.0511287798066

BBox = tuple[float, float, float, float]


def parse_bbox_arg(text: str) -> BBox:
    """``W,S,E,N`` in degrees; raises BadRequest when malformed or inverted."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise BadRequest(f"bbox {text!r}: expected W,S,E,N in degrees") from exc
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise BadRequest(f"bbox {text!r}: expected west < east and south < north, in degrees")
    return west, south, east, north


def tile_xy(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The tile containing (lon, lat) at ``zoom``."""
    n = 1 << zoom
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tile_bounds(zoom: int, x: int, y: int) -> BBox:
    """The (west, south, east, north) of a tile in degrees."""
    n = 1 << zoom

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def tiles_in_bbox(bbox: BBox, minzoom: int, maxzoom: int) -> Iterator[tuple[int, int, int]]:
    """Every (z, x, y) whose tile meets ``bbox``, zoom by zoom, rows in order."""
    west, south, east, north = bbox
    for zoom in range(minzoom, maxzoom + 1):
        x0, y0 = tile_xy(west, north, zoom)
        x1, y1 = tile_xy(east, south, zoom)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield zoom, x, y


def count_tiles(bbox: BBox, minzoom: int, maxzoom: int) -> int:
    """How many tiles ``tiles_in_bbox`` yields."""
    west, south, east, north = bbox
    total = 0
    for zoom in range(minzoom, maxzoom + 1):
        x0, y0 = tile_xy(west, north, zoom)
        x1, y1 = tile_xy(east, south, zoom)
        total += (x1 - x0 + 1) * (y1 - y0 + 1)
    return total

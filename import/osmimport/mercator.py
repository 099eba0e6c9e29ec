"""Web Mercator (EPSG:3857) and its XYZ tile grid: projection, tile arithmetic, bbox parsing."""

from __future__ import annotations

import math

from osmimport.errors import UsageError

#: The sphere EPSG:3857 projects onto (WGS84's equatorial radius), in metres.
EARTH_RADIUS = 6378137.0
#: Half the width of the projected world (its x runs from -HALF_WORLD to HALF_WORLD).
HALF_WORLD = math.pi * EARTH_RADIUS
EARTH_CIRCUMFERENCE = 2 * HALF_WORLD
#: Web Mercator stops at this latitude (the projected world is square).
MAX_LAT = 85.0511287798066

#: (west, south, east, north)
BBox = tuple[float, float, float, float]


class BBoxError(UsageError):
    """A bounding box that is malformed, inverted or out of range."""


def parse_bbox(text: str, what: str = "bbox", max_lat: float = 90.0) -> BBox:
    """``W,S,E,N`` in degrees; BBoxError (naming ``what``) when malformed or inverted."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise BBoxError(f"{what} {text!r}: expected W,S,E,N in degrees") from None
    if not (-180 <= west < east <= 180 and -max_lat <= south < north <= max_lat):
        raise BBoxError(
            f"{what} {text!r}: expected west < east within ±180 and south < north within "
            f"±{max_lat:g}, in degrees"
        )
    return west, south, east, north


def lonlat_to_mercator(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 degrees to EPSG:3857 metres."""
    x = lon / 180.0 * HALF_WORLD
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * EARTH_RADIUS
    return x, y


def mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """EPSG:3857 metres to WGS84 degrees."""
    lon = x / HALF_WORLD * 180.0
    lat = math.degrees(2 * math.atan(math.exp(y / EARTH_RADIUS)) - math.pi / 2)
    return lon, lat


def tile_lonlat(zoom: int, x: float, y: float) -> tuple[float, float]:
    """The (lon, lat) at fractional tile coordinates: (x, y) is a tile's north-west corner."""
    n = 1 << zoom
    lon = x / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    return lon, lat


def tile_xy(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The tile containing (lon, lat) at ``zoom``."""
    n = 1 << zoom
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tile_bounds(zoom: int, x: int, y: int) -> BBox:
    """The (west, south, east, north) of a tile in degrees."""
    west, north = tile_lonlat(zoom, x, y)
    east, south = tile_lonlat(zoom, x + 1, y + 1)
    return west, south, east, north

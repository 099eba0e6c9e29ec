"""Which tiles of the XYZ grid cover a bounding box."""

from __future__ import annotations

from collections.abc import Iterator

from osmimport.mercator import BBox, tile_xy


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

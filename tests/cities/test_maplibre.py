"""MapLibre Native map bodies: exact size, and large maps assembled from pieces without seams."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageChops, ImageStat

from cities.render import MapRenderer
from tileserver.raster import RasterPool, lonlat_to_mercator, render_image
from tileserver.townplan_renderer import PIECE_SIDE

# Vaduz centre, about 2.4 x 1.6 km.
WEST, SOUTH = lonlat_to_mercator(9.505, 47.130)
EAST, NORTH = lonlat_to_mercator(9.537, 47.146)


def test_pieced_map_matches_one_render(
    liechtenstein_url: str, renderer_for: Callable[[str], MapRenderer]
) -> None:
    width = PIECE_SIDE + 900  # two pieces across, one down
    height = round(width * (NORTH - SOUTH) / (EAST - WEST))
    assert height < PIECE_SIDE
    png = renderer_for(liechtenstein_url)(
        style="print",
        bbox_3857=(WEST, SOUTH, EAST, NORTH),
        width_px=width,
        height_px=height,
        pixel_ratio=2.0,
    )
    pieced = Image.open(io.BytesIO(png)).convert("RGB")
    assert pieced.size == (width, height)
    pool = RasterPool(database_url=liechtenstein_url)
    try:
        whole_png = render_image(
            pool, "print", width=width // 2, height=height // 2,
            bbox_3857=(WEST, SOUTH, EAST, NORTH), pixel_ratio=2.0, timeout=300,
        )  # fmt: skip
    finally:
        pool.close()
    whole = Image.open(io.BytesIO(whole_png)).convert("RGB").resize((width, height))
    # The same streets at the same places: only label placement may differ here and there.
    diff = ImageStat.Stat(ImageChops.difference(pieced, whole).convert("L")).mean[0]
    assert diff < 6, diff
    # A map shifted by a few pixels (what a wrong piece centre would give) differs far more.
    shifted = ImageChops.offset(whole, 6, 0)
    assert ImageStat.Stat(ImageChops.difference(pieced, shifted).convert("L")).mean[0] > diff * 1.5

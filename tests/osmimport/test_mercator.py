"""Web Mercator projection and tile arithmetic against known values."""

from __future__ import annotations

import pytest

from osmimport.mercator import (
    HALF_WORLD,
    MAX_LAT,
    BBoxError,
    lonlat_to_mercator,
    mercator_to_lonlat,
    parse_bbox,
    tile_bounds,
    tile_lonlat,
    tile_xy,
)


def test_world_extent_is_epsg_3857() -> None:
    assert HALF_WORLD == pytest.approx(20037508.342789244)
    assert lonlat_to_mercator(180.0, MAX_LAT) == pytest.approx((HALF_WORLD, HALF_WORLD))
    assert lonlat_to_mercator(0.0, 0.0) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_projection_round_trips() -> None:
    for lon, lat in [(9.5209, 47.141), (-73.98, 40.75), (151.2, -33.87), (0.0, 0.0)]:
        assert mercator_to_lonlat(*lonlat_to_mercator(lon, lat)) == pytest.approx((lon, lat))


def test_known_point_in_metres() -> None:
    # Vaduz, as `gdaltransform -s_srs EPSG:4326 -t_srs EPSG:3857 -output_xy` gives it.
    x, y = lonlat_to_mercator(9.5209, 47.141)
    assert x == pytest.approx(1059861.73989368, abs=1e-6)
    assert y == pytest.approx(5965119.30614622, abs=1e-6)


def test_tile_bounds_of_known_tiles() -> None:
    assert tile_bounds(0, 0, 0) == pytest.approx((-180.0, -MAX_LAT, 180.0, MAX_LAT))
    assert tile_bounds(1, 1, 0) == pytest.approx((0.0, 0.0, 180.0, MAX_LAT), abs=1e-9)
    # The z14 tile of Vaduz; its latitudes are gdaltransform's (EPSG:3857 -> 4326) of the
    # tile's edges in metres.
    assert tile_bounds(14, 8625, 5753) == pytest.approx(
        (9.51416015625, 47.129950756663, 9.5361328125, 47.144897485554), abs=1e-9
    )


def test_tile_xy_and_bounds_agree() -> None:
    assert tile_xy(9.5209, 47.141, 14) == (8625, 5753)
    for zoom in (0, 3, 10, 18):
        x, y = tile_xy(9.5209, 47.141, zoom)
        west, south, east, north = tile_bounds(zoom, x, y)
        assert west <= 9.5209 < east and south < 47.141 <= north
        # The tile's corners map back to the tile (just inside its north-west corner).
        assert tile_xy(west + 1e-9, north - 1e-9, zoom) == (x, y)


def test_tile_xy_clamps_to_the_world() -> None:
    assert tile_xy(180.0, -90.0, 2) == (3, 3)
    assert tile_xy(-180.0, 90.0, 2) == (0, 0)


def test_tile_lonlat_of_the_centre_of_a_block() -> None:
    assert tile_lonlat(1, 1, 1) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_parse_bbox() -> None:
    assert parse_bbox("9.47,47.04,9.64,47.27") == (9.47, 47.04, 9.64, 47.27)
    with pytest.raises(BBoxError, match="expected W,S,E,N"):
        parse_bbox("9.47,47.04,9.64")
    with pytest.raises(BBoxError, match="west < east"):
        parse_bbox("9.64,47.04,9.47,47.27")
    with pytest.raises(BBoxError, match="--bbox"):
        parse_bbox("0,-89,1,89", "--bbox", max_lat=MAX_LAT)

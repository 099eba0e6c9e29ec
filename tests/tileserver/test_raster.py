"""Raster tiles drawn by MapLibre Native from the styles and the imported Liechtenstein data."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from PIL import Image

from osmimport import schema
from osmimport.mercator import HALF_WORLD as HALF
from osmimport.mercator import lonlat_to_mercator, mercator_to_lonlat
from osmimport.paths import styles_dir
from osmimport.settings import DatabaseSettings
from tests.tileserver.conftest import MULHOUSE
from tileserver.app import create_app
from tileserver.raster import (
    ImageRequest,
    RasterPool,
    RenderBusy,
    RenderTimeout,
    TileRequest,
)
from tileserver.raster_worker import METATILE, block_of, block_view
from tileserver.settings import CacheSettings, RasterSettings, Settings

with warnings.catch_warnings():
    # Starlette warns about httpx at import; the client works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

STYLE = "colour"


def settings_for(url: str) -> Settings:
    return Settings(database=DatabaseSettings(database_url=url), cache=CacheSettings(disk=False))


@pytest.fixture(scope="module")
def client(liechtenstein_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(liechtenstein_url))) as c:
        yield c


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def fill_colour(style: str, layer_id: str) -> tuple[int, int, int]:
    data = json.loads((styles_dir() / f"{style}.json").read_text(encoding="utf-8"))
    layer = next(layer for layer in data["layers"] if layer["id"] == layer_id)
    colour = layer["paint"]["fill-color"]
    assert isinstance(colour, str), "the test reads a constant fill colour"
    return hex_rgb(colour)


def pixel_of(x: float, y: float, z: int, size: int = 256) -> tuple[int, int, int, int]:
    """Tile column/row of EPSG:3857 (x, y) at z, and its pixel in that tile."""
    world = 2 * HALF
    fx = (x + HALF) / world * 2**z
    fy = (HALF - y) / world * 2**z
    return int(fx), int(fy), int((fx % 1) * size), int((fy % 1) * size)


def query(url: str, text: str) -> list[tuple[float, float]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(text)
        return [(float(a), float(b)) for a, b in cur.fetchall()]


def test_tile_is_a_png_of_the_map(client: TestClient, liechtenstein_url: str) -> None:
    # The largest building of Vaduz (the commune polygon holds the town).
    (bx, by), *_ = query(
        liechtenstein_url,
        f"""SELECT ST_X(p), ST_Y(p) FROM (
              SELECT ST_PointOnSurface(b.{schema.GEOM_COLUMN}) AS p
              FROM {schema.SCHEMA}.buildings b, {schema.SCHEMA}.{schema.COMMUNES_TABLE} c
              WHERE c.name = 'Vaduz' AND ST_Contains(c.geom, b.{schema.GEOM_COLUMN})
              ORDER BY ST_Area(b.{schema.GEOM_COLUMN}) DESC LIMIT 1) q""",
    )
    x, y, px, py = pixel_of(bx, by, 16)
    response = client.get(f"/styles/{STYLE}/16/{x}/{y}.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = decode(response.content)
    assert image.shape == (256, 256, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    building = np.array(fill_colour(STYLE, "buildings"))
    assert np.abs(image[py, px] - building).max() <= 24, (image[py, px], building)

    # The Rhine: a point inside the largest water area, at z14.
    (wx, wy), *_ = query(
        liechtenstein_url,
        f"""SELECT ST_X(p), ST_Y(p) FROM (
              SELECT ST_PointOnSurface({schema.GEOM_COLUMN}) AS p
              FROM {schema.SCHEMA}.water_polygons
              WHERE kind IS DISTINCT FROM 'glacier'
              ORDER BY ST_Area({schema.GEOM_COLUMN}) DESC LIMIT 1) q""",
    )
    x, y, px, py = pixel_of(wx, wy, 14)
    water_tile = decode(client.get(f"/styles/{STYLE}/14/{x}/{y}.png").content)
    water = np.array(fill_colour(STYLE, "water-polygons"))
    assert np.abs(water_tile[py, px] - water).max() <= 24, (water_tile[py, px], water)
    assert np.abs(water_tile[py, px] - building).max() > 24


def test_retina_and_512_tiles(client: TestClient, liechtenstein_url: str) -> None:
    x, y, _, _ = pixel_of(*lonlat_to_mercator(9.5209, 47.1410), 15)
    one = decode(client.get(f"/styles/{STYLE}/15/{x}/{y}.png").content)
    two = client.get(f"/styles/{STYLE}/15/{x}/{y}@2x.png")
    assert two.status_code == 200
    retina = decode(two.content)
    assert retina.shape == (512, 512, 3)
    big = decode(client.get(f"/styles/{STYLE}/512/15/{x}/{y}.png").content)
    assert big.shape == (512, 512, 3)
    # The same place at twice the pixels: downsampled, the @2x tile resembles the 1x one.
    small = np.asarray(
        Image.fromarray(retina.astype("uint8")).resize((256, 256), Image.Resampling.BOX)
    ).astype(int)
    assert np.abs(small - one).mean() < 20
    zero = decode(client.get(f"/styles/{STYLE}/0/0/0.png").content)
    assert zero.shape == (256, 256, 3)


def test_cache_etag_and_errors(client: TestClient) -> None:
    path = f"/styles/{STYLE}/13/4312/2876.png"
    first = client.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public")
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert client.get(path).content == first.content
    for bad, status in [
        ("/styles/nope/1/0/0.png", 404),
        (f"/styles/{STYLE}/3/8/0.png", 404),
        (f"/styles/{STYLE}/25/0/0.png", 404),
        (f"/styles/{STYLE}/300/3/0/0.png", 404),
        (f"/styles/{STYLE}/3/0/abc.png", 400),
    ]:
        response = client.get(bad)
        assert response.status_code == status, bad
        assert response.json()["detail"]


def _labels_near_seams(url: str) -> list[tuple[int, int, int, int]]:
    """(z, x, y, row px) of left tiles whose right edge runs within 6 px of a town's label point."""
    points = query(
        url,
        f"""SELECT ST_X({schema.GEOM_COLUMN}), ST_Y({schema.GEOM_COLUMN})
            FROM {schema.SCHEMA}.place_labels
            WHERE name IS NOT NULL AND kind IN ('village', 'town', 'city', 'capital')""",
    )
    found = []
    for z in range(12, 16):
        for x, y in points:
            col, row, px, py = pixel_of(x, y, z)
            if px <= 6:
                found.append((z, col - 1, row, py))
            elif px >= 250:
                found.append((z, col, row, py))
    return found


def test_labels_continue_across_tile_edges(client: TestClient, liechtenstein_url: str) -> None:
    candidates = _labels_near_seams(liechtenstein_url)
    assert candidates
    pool = RasterPool(database_url=liechtenstein_url)
    compared = 0
    try:
        for z, x, y, py in candidates:
            left = decode(client.get(f"/styles/{STYLE}/{z}/{x}/{y}.png").content)
            right = decode(client.get(f"/styles/{STYLE}/{z}/{x + 1}/{y}.png").content)
            stitched = np.concatenate([left, right], axis=1)
            rows = slice(max(0, py - 20), py + 20)
            # Label text (#222, anti-aliased, haloed) on both sides of the seam.
            dark = stitched[rows].sum(axis=2) < 330
            if not (dark[:, 226:256].sum() >= 8 and dark[:, 256:286].sum() >= 8):
                continue  # the label lost a collision or sits above/below the point
            # The same 512 x 256 area as one image (MapLibre zoom is one less for 256 px).
            cx = (x + 1) / 2**z * 2 * HALF - HALF
            cy = HALF - (y + 0.5) / 2**z * 2 * HALF
            lon, lat = mercator_to_lonlat(cx, cy)
            whole = decode(
                pool.render(
                    ImageRequest(STYLE, lon=lon, lat=lat, zoom=z - 1, width=512, height=256)
                )
            )
            # The text across the seam is the same in the tiles and in the single image.
            assert np.abs(stitched[rows, 200:312] - whole[rows, 200:312]).mean() < 4
            assert np.abs(stitched - whole).mean() < 4
            compared += 1
            if compared == 2:
                break
    finally:
        pool.close()
    assert compared >= 1, "no label straddling a tile edge was drawn"


def test_render_timeout_answers_503_and_the_server_stays_up(
    liechtenstein_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FONDPLAN_RASTER_TIMEOUT", "0.001")
    with TestClient(create_app(settings_for(liechtenstein_url))) as c:
        response = c.get(f"/styles/{STYLE}/12/2156/1438.png")
        assert response.status_code == 503
        assert "longer than" in response.json()["detail"]
        assert c.get("/tiles/basemap/12/2156/1438.mvt").status_code == 200
        assert c.get("/styles.json").status_code == 200


def test_pool_recovers_after_a_timeout(liechtenstein_url: str) -> None:
    pool = RasterPool(database_url=liechtenstein_url)
    try:
        with pytest.raises(RenderTimeout):
            pool.render(TileRequest(STYLE, 12, 2156, 1438), timeout=0.001)
        png = pool.render(TileRequest(STYLE, 12, 2156, 1438))
        assert decode(png).shape == (256, 256, 3)
    finally:
        pool.close()


def test_renderer_crash_answers_503_then_recovers(liechtenstein_url: str) -> None:
    app = create_app(settings_for(liechtenstein_url))
    with TestClient(app) as c:
        assert c.get(f"/styles/{STYLE}/10/538/359.png").status_code == 200
        service = next(
            hook.__self__ for hook in app.state.context.on_shutdown if hasattr(hook, "__self__")
        )
        pool = service.pool()
        pid = pool.pid
        assert pid is not None
        # Freeze the render process, queue a render, then kill it: the render is in flight.
        os.kill(pid, signal.SIGSTOP)
        result: dict[str, object] = {}

        def fetch() -> None:
            response = c.get(f"/styles/{STYLE}/11/1077/719.png")
            result["status"] = response.status_code
            result["body"] = response.json()

        thread = threading.Thread(target=fetch)
        thread.start()
        for _ in range(500):
            if pool._pending:
                break
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=60)
        assert result["status"] == 503
        assert "detail" in result["body"]  # type: ignore[operator]
        # The server keeps serving, and the next render starts a fresh process.
        assert c.get("/tiles/basemap/11/1077/719.mvt").status_code in (200, 204)
        again = c.get(f"/styles/{STYLE}/11/1077/719.png")
        assert again.status_code == 200
        assert pool.pid not in (None, pid)


def test_cli_render(
    liechtenstein_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tileserver.cli import main

    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    out = tmp_path / "map.png"
    code = main(
        [
            "render",
            "--style",
            STYLE,
            "--bbox",
            "9.50,47.12,9.54,47.15",
            "--zoom",
            "14",
            "--size",
            "300x200",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    image = decode(out.read_bytes())
    assert image.shape == (200, 300, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    assert main(["render", "--style", STYLE, "--bbox", "9.5,47", "-o", str(out)]) == 1
    assert (
        main(["render", "--style", "nope", "--bbox", "9.50,47.12,9.54,47.15", "-o", str(out)]) == 1
    )


def _tile_xy(lon: float, lat: float, z: int) -> tuple[float, float]:
    x, y = lonlat_to_mercator(lon, lat)
    return (x + HALF) / (2 * HALF) * 2**z, (HALF - y) / (2 * HALF) * 2**z


@pytest.mark.parametrize(("z", "scale", "shift"), [(16, 1, 0), (17, 1, 0), (17, 1, 1), (16, 2, 0)])
def test_a_block_of_tiles_matches_one_image_along_its_seams(
    town_centres_url: str, z: int, scale: int, shift: int
) -> None:
    """Four 256 px tiles of Mulhouse centre (shops, house numbers, streets) stitched together
    are one 512 px image of their area: no label cut or dropped at a tile edge, whether the
    seams run inside the blocks the renderer draws at once or between them."""
    fx, fy = _tile_xy(*MULHOUSE, z)
    x0, y0 = round(fx) - 1 + shift, round(fy) - 1 + shift
    suffix = "@2x" if scale == 2 else ""
    with TestClient(create_app(settings_for(town_centres_url))) as c:
        rows = [
            np.concatenate(
                [
                    decode(c.get(f"/styles/{STYLE}/{z}/{x0 + i}/{y0 + j}{suffix}.png").content)
                    for i in (0, 1)
                ],
                axis=1,
            )
            for j in (0, 1)
        ]
    stitched = np.concatenate(rows, axis=0)
    corner = ((x0 + 1) / 2**z * 2 * HALF - HALF, HALF - (y0 + 1) / 2**z * 2 * HALF)
    lon, lat = mercator_to_lonlat(*corner)
    pool = RasterPool(database_url=town_centres_url)
    try:
        whole = decode(
            pool.render(
                ImageRequest(
                    STYLE, lon=lon, lat=lat, zoom=z - 1, width=512, height=512, pixel_ratio=scale
                )
            )
        )
    finally:
        pool.close()
    assert stitched.shape == whole.shape == (512 * scale, 512 * scale, 3)
    band = np.zeros(whole.shape[:2], dtype=bool)
    middle, reach = 256 * scale, 12 * scale
    band[:, middle - reach : middle + reach] = True
    band[middle - reach : middle + reach, :] = True
    # Labels run across the seams here (dark text pixels in the single image)...
    assert (whole[band].sum(axis=1) < 330).sum() >= 30 * scale
    # ...and the tiles draw them exactly as the single image does.
    differ = np.abs(stitched - whole).max(axis=2) > 48
    assert differ[band].sum() <= 5 * scale, differ[band].sum()
    assert np.abs(stitched - whole).mean() < 0.5


def test_tiles_are_drawn_in_aligned_blocks_away_from_the_poles() -> None:
    same = {block_of(TileRequest(STYLE, 16, 34102 + i, 22848 + j)) for i in (0, 1) for j in (0, 1)}
    assert len(same) == 1
    (block,) = same
    assert block is not None and (block.x, block.y, block.size) == (34102, 22848, METATILE)
    lon, lat, zoom = block_view(block)
    # The view's centre is the block's shared corner; 256 px tiles are MapLibre's zoom - 1.
    x, y = lonlat_to_mercator(lon, lat)
    assert x == pytest.approx((34103 / 2**16) * 2 * HALF - HALF, abs=0.01)
    assert y == pytest.approx(HALF - (22849 / 2**16) * 2 * HALF, abs=0.01)
    assert zoom == 15
    assert block_of(TileRequest(STYLE, 16, 34103, 22848)) != block_of(
        TileRequest(STYLE, 16, 34104, 22848)
    )
    # Rows whose margin would cross a pole are drawn alone.
    assert block_of(TileRequest(STYLE, 3, 4, 0)) is None
    assert block_of(TileRequest(STYLE, 3, 4, 7)) is None
    assert block_of(TileRequest(STYLE, 0, 0, 0, tile_size=512)) is None


def test_sending_a_render_leaves_the_event_loop_free(liechtenstein_url: str) -> None:
    # The pool is busy (its lock held, as while its render process starts or stops): the
    # request waits for it in a thread, while the loop goes on answering.
    pool = RasterPool(database_url=liechtenstein_url, settings=RasterSettings(max_pending=0))
    held = threading.Event()

    def hold() -> None:
        with pool._lock:
            held.set()
            time.sleep(0.5)

    async def main() -> float:
        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        with pytest.raises(RenderBusy):
            await pool.arender(TileRequest("grey", 14, 8590, 5747, 256, 1))
        ticker.cancel()
        holder.join()
        return max(gaps, default=0.5)

    assert asyncio.run(main()) < 0.3

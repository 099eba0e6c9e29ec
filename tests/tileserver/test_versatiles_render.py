"""VersaTiles' Shortbread style, unchanged, drawn by MapLibre Native from our Liechtenstein data."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
from PIL import Image

from osmimport import schema
from osmimport.paths import styles_dir
from tests.tileserver.conftest import VADUZ, tile_of
from tests.tileserver.test_viewer import server, viewer_steps  # noqa: F401 - fixture
from tileserver.raster import RasterPool, lonlat_to_mercator, render_image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

STYLE = "versatiles-colorful"
#: The same style with every symbol layer removed: the map without labels and icons.
UNLABELLED = "versatiles-unlabelled"
HALF = math.pi * 6378137.0
#: Wide enough at z14 to reach the Rhine west of the town.
WIDTH, HEIGHT = 1024, 512


def _style() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((styles_dir() / f"{STYLE}.json").read_text("utf-8"))
    return data


def _layer(layer_id: str) -> dict[str, Any]:
    return next(layer for layer in _style()["layers"] if layer["id"] == layer_id)


def _rgb(value: str) -> np.ndarray:
    """A CSS colour of the style ("rgb(…)", opaque "rgba(…)" or "#rrggbb") as RGB."""
    match = re.fullmatch(r"rgba?\((\d+),(\d+),(\d+)(?:,([\d.]+))?\)", value.replace(" ", ""))
    if match:
        assert match.group(4) in (None, "1"), f"{value} is not opaque"
        return np.array([int(match.group(i)) for i in (1, 2, 3)])
    hex_match = re.fullmatch(r"#([0-9a-fA-F]{6})", value)
    assert hex_match, f"colour {value!r} not understood by this test"
    return np.array([int(hex_match.group(1)[i : i + 2], 16) for i in (0, 2, 4)])


def _paint_colour(layer_id: str, prop: str) -> np.ndarray:
    colour = _layer(layer_id)["paint"][prop]
    assert isinstance(colour, str), f"{layer_id} {prop} is not a constant colour"
    return _rgb(colour)


def _decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def _near(image: np.ndarray, colour: np.ndarray, tolerance: int) -> np.ndarray:
    return np.asarray(np.abs(image - colour).max(axis=2) <= tolerance)


def _view_bbox(zoom: float) -> tuple[float, float, float, float]:
    """The EPSG:3857 box of the image centred on Vaduz at MapLibre ``zoom``."""
    cx, cy = lonlat_to_mercator(*VADUZ)
    metres_per_pixel = 2 * HALF / (512 * 2**zoom)
    half_w, half_h = WIDTH / 2 * metres_per_pixel, HEIGHT / 2 * metres_per_pixel
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _pixel(bbox: tuple[float, float, float, float], x: float, y: float) -> tuple[int, int]:
    """Row and column of EPSG:3857 (x, y) in the image of ``bbox``."""
    west, south, east, north = bbox
    return int((north - y) / (north - south) * HEIGHT), int((x - west) / (east - west) * WIDTH)


def _inner_points(
    url: str, layer: str, bbox: tuple[float, float, float, float], where: str
) -> list[tuple[float, float]]:
    """Up to 200 points (seeded) of ``layer`` in ``bbox``, 5 px inside its polygons and 8 px
    away from boundary lines (drawn over everything, and along the Rhine)."""
    pixel = (bbox[2] - bbox[0]) / WIDTH
    table = schema.LAYER_BY_NAME[layer].table
    boundaries = schema.LAYER_BY_NAME["boundaries"].table
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"""WITH v AS (SELECT ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 3857) AS box),
                inner_area AS (
                  SELECT ST_Union(ST_Buffer(ST_Intersection(t.{schema.GEOM_COLUMN}, v.box),
                                            -5 * %(px)s)) AS g
                  FROM {schema.SCHEMA}.{table} t, v
                  WHERE {where} AND t.{schema.GEOM_COLUMN} && v.box),
                lines AS (
                  SELECT ST_Buffer(ST_Union(b.{schema.GEOM_COLUMN}), 8 * %(px)s) AS g
                  FROM {schema.SCHEMA}.{boundaries} b, v
                  WHERE b.{schema.GEOM_COLUMN} && v.box)
                SELECT ST_X(p.geom), ST_Y(p.geom)
                FROM inner_area, lines,
                     ST_Dump(ST_GeneratePoints(
                       CASE WHEN lines.g IS NULL THEN inner_area.g
                            ELSE ST_Difference(inner_area.g, lines.g) END, 200, 1)) p""",
            {"px": pixel, "w": bbox[0], "s": bbox[1], "e": bbox[2], "n": bbox[3]},
        )
        points = [(float(x), float(y)) for x, y in cur.fetchall()]
    assert len(points) >= 100, f"no {layer} in the view"
    return points


def _share_at(image: np.ndarray, bbox: Any, points: Any, colour: np.ndarray) -> float:
    """The share of ``points`` whose pixel is ``colour`` (labels, lines may cover some)."""
    pixels = [_pixel(bbox, x, y) for x, y in points]
    return float(np.mean([np.abs(image[r, c] - colour).max() <= 4 for r, c in pixels]))


@pytest.fixture(scope="module")
def pool(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasterPool]:
    """A render process over the Liechtenstein import with the style (byte for byte) and a copy
    without its symbol layers."""
    folder = tmp_path_factory.mktemp("styles")
    shutil.copyfile(styles_dir() / f"{STYLE}.json", folder / f"{STYLE}.json")
    stripped = _style()
    stripped["layers"] = [layer for layer in stripped["layers"] if layer["type"] != "symbol"]
    (folder / f"{UNLABELLED}.json").write_text(json.dumps(stripped), encoding="utf-8")
    raster = RasterPool(database_url=liechtenstein_url, styles_dir=folder)
    try:
        yield raster
    finally:
        raster.close()


def _render(pool: RasterPool, style: str, zoom: float) -> np.ndarray:
    png = render_image(pool, style, width=WIDTH, height=HEIGHT, center=VADUZ, zoom=zoom)
    image = _decode(png)
    assert image.shape == (HEIGHT, WIDTH, 3)
    return image


def test_the_served_style_is_the_third_party_file(tile_client: TestClient) -> None:
    response = tile_client.get(f"/styles/{STYLE}.json")
    assert response.status_code == 200
    served = response.json()
    assert served["layers"] == _style()["layers"]


@pytest.mark.parametrize("zoom", [14, 15])
def test_vaduz_draws_in_the_styles_own_colours_with_labels(
    pool: RasterPool, liechtenstein_url: str, zoom: int
) -> None:
    image = _render(pool, STYLE, zoom)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 100, "a (nearly) uniform image"
    background = _paint_colour("background", "background-color")
    assert _near(image, background, 3).mean() < 0.5

    bbox = _view_bbox(zoom)
    if zoom == 14:
        # Water: the water areas in view (the Rhine), in the style's water colour.
        water = _paint_colour("water-area-river", "fill-color")
        assert np.array_equal(water, _paint_colour("water-area", "fill-color"))
        kinds = "kind IN ('river', 'water')"
        points = _inner_points(liechtenstein_url, "water_polygons", bbox, kinds)
        assert _share_at(image, bbox, points, water) > 0.9
        assert _near(image, water, 4).mean() > 0.005
    else:
        # Buildings: the style fades them in from z14 to z15, fully drawn at z15.
        building = _paint_colour("building", "fill-color")
        # Translated 2 px up-left over an outline fill: 5 px inside is the top fill.
        points = _inner_points(liechtenstein_url, "buildings", bbox, "TRUE")
        assert _share_at(image, bbox, points, building) > 0.6
        assert _near(image, building, 4).mean() > 0.02

    # Labels: the same view without the symbol layers differs in text-coloured pixels.
    plain = _render(pool, UNLABELLED, zoom)
    changed = np.abs(image - plain).max(axis=2) > 40
    assert changed.mean() > 0.002, "the symbol layers drew nothing"
    text = _paint_colour("label-street-residential", "text-color")
    assert np.array_equal(text, _paint_colour("label-place-town", "text-color"))
    text_pixels = _near(image, text, 30)
    assert (text_pixels & changed).sum() >= 40, "no label text in the render"
    assert _near(plain, text, 30).sum() < text_pixels.sum() / 4


def test_raster_tile_route_serves_the_style(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 16)
    response = tile_client.get(f"/styles/{STYLE}/16/{x}/{y}.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    tile = _decode(response.content)
    assert tile.shape == (256, 256, 3)
    assert len(np.unique(tile.reshape(-1, 3), axis=0)) > 20
    # A 256 px z16 tile is MapLibre's z15: the buildings are drawn.
    assert _near(tile, _paint_colour("building", "fill-color"), 4).mean() > 0.02


#: Viewer steps: pick the style in the switcher, wait until it has drawn, report what it shows.
_SWITCH = """
export default async (page, report) => {
  const [id, name] = %s;
  await page.selectOption("#style-select", id);
  await page.waitForFunction(
    (name) => {
      const map = window.fondplan.map;
      try {
        return map.getStyle().name === name && map.loaded() && map.areTilesLoaded();
      } catch (err) {
        return false;  // the style is still loading
      }
    },
    name,
    { timeout: 60000 },
  );
  await page.waitForTimeout(500);
  report.name = await page.evaluate(() => window.fondplan.map.getStyle().name);
  report.symbols = await page.evaluate(() => {
    const map = window.fondplan.map;
    const ids = map.getStyle().layers.filter((l) => l.type === "symbol").map((l) => l.id);
    return map.queryRenderedFeatures({ layers: ids }).length;
  });
};
"""


@pytest.mark.browser
def test_viewer_switches_to_the_style_without_console_errors(
    server: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    report = viewer_steps(
        server, tmp_path, "colour", _SWITCH % json.dumps([STYLE, _style()["name"]])
    )
    assert report["failedRequests"] == []
    switched = report["steps"]
    assert isinstance(switched, dict)
    assert switched["name"] == _style()["name"]
    assert isinstance(switched["symbols"], int) and switched["symbols"] > 0, "no labels drawn"
    responses = report["responses"]
    assert isinstance(responses, list)
    assert any("/sprites/versatiles" in r["url"] and r["status"] == 200 for r in responses), (
        "the style's sprite was not loaded"
    )
    assert any("noto_sans" in r["url"].lower() and r["status"] == 200 for r in responses)


#: Viewer steps: visit the busiest places of Vaduz and Schaan, note every image the map lacked.
_VISIT = """
export default async (page, report) => {
  report.missing = await page.evaluate(
    (views) =>
      new Promise((resolve) => {
        const map = window.fondplan.map;
        const missing = new Set();
        map.on("styleimagemissing", (event) => missing.add(event.id));
        const next = () => {
          if (!views.length) return resolve([...missing].sort());
          const [lon, lat, zoom] = views.shift();
          map.jumpTo({ center: [lon, lat], zoom });
          map.once("idle", next);
        };
        next();
      }),
    %s,
  );
};
"""


@pytest.mark.browser
def test_viewer_finds_every_image_of_the_style(
    server: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    views = [[*VADUZ, zoom] for zoom in (17, 16, 15, 14)] + [[9.5095, 47.1653, 16.5]]
    report = viewer_steps(server, tmp_path, STYLE, _VISIT % json.dumps(views))
    missing = report["steps"]["missing"]  # type: ignore[index]
    assert missing == []
    warnings = report["consoleWarnings"]
    assert isinstance(warnings, list)
    assert [w for w in warnings if "could not be loaded" in w] == []

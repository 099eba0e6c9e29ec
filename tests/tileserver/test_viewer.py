"""The viewer in headless Chromium: loads clean, draws the map, labels get their glyphs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, run_json
from tests.tileserver.conftest import serve_process

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("viewer_check.mjs")

pytestmark = pytest.mark.browser


@contextmanager
def serving(database_url: str, cache_dir: Path) -> Iterator[str]:
    """A real uvicorn (``fondplan serve``) over ``database_url``; yields its base URL."""
    with serve_process(database_url, cache_dir) as (_, url):
        yield url


@pytest.fixture(scope="module")
def server(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn (``fondplan serve``) over the Liechtenstein import."""
    with serving(liechtenstein_url, tmp_path_factory.mktemp("viewer-cache")) as url:
        yield url


def run_viewer(
    url: str, screenshot: Path, style: str = "", steps: Path | None = None
) -> dict[str, object]:
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.skip("needs /usr/bin/chromium and node (make setup)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.skip("needs the npm packages (make setup)")
    return run_json(
        ["node", str(SCRIPT), url + "/", str(screenshot), style, *([str(steps)] if steps else [])]
    )


def viewer_steps(url: str, tmp_path: Path, style: str, script: str) -> dict[str, object]:
    """The viewer's report after it ran the steps ``script`` on ``style``, with no error logged."""
    steps = tmp_path / "steps.mjs"
    steps.write_text(script, encoding="utf-8")
    report = run_viewer(url, tmp_path / "viewer.png", style, steps)
    assert "error" not in report, report.get("error")
    assert report["consoleErrors"] == []
    return report


@pytest.mark.parametrize("style", ["colour", "grey"])
def test_viewer_loads_clean_and_draws(server: str, tmp_path: Path, style: str) -> None:
    shot = tmp_path / "viewer.png"
    report = run_viewer(server, shot, style)
    assert "error" not in report, report.get("error")
    assert report["loaded"] is True
    assert report["consoleErrors"] == []
    assert report["failedRequests"] == []
    responses = report["responses"]
    assert isinstance(responses, list)
    # Nothing from elsewhere: every request goes to this server.
    elsewhere = [r["url"] for r in responses if not r["url"].startswith((server, "data:", "blob:"))]
    assert elsewhere == []
    glyphs = [r for r in responses if "/fonts/" in r["url"]]
    assert glyphs and all(r["status"] == 200 for r in glyphs)
    tiles = [r for r in responses if "/tiles/basemap/" in r["url"]]
    assert tiles and all(r["status"] in (200, 204) for r in tiles)
    assert any("/sprites/" in r["url"] and r["status"] == 200 for r in responses)
    assert report["styleOptions"] == sorted(report["styleOptions"])  # type: ignore[type-var]
    assert {"colour", "grey"} <= set(report["styleOptions"])  # type: ignore[arg-type]

    panels = report["panels"]
    assert isinstance(panels, dict)
    assert f"{server}/styles/{style}.json" in panels["maplibre"]
    assert "new maplibregl.Map" in panels["maplibre"]
    assert "L.maplibreGL" in panels["leaflet"]
    assert f"{server}/static/vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.js" in panels["leaflet"]

    image = Image.open(shot).convert("RGB")
    # The map area below the toolbar: many distinct colours means it drew.
    crop = image.crop((0, 80, image.width, image.height - 40))
    colours = crop.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50
    extrema = crop.getextrema()
    assert any(high - low > 60 for low, high in extrema)


#: Viewer steps: the first view against the TileJSON bounds, then the map's share of a 1200 px
#: window (points where the map is what a click would reach) with the panels open and folded.
_FOLD = """
export default async (page, report) => {
  report.view = await page.evaluate(async () => {
    const tilejson = await (await fetch(window.fondplan.base + "/tiles/basemap.json")).json();
    const [west, south, east, north] = tilejson.bounds;
    const map = window.fondplan.map;
    const nw = map.project([west, north]);
    const se = map.project([east, south]);
    return {
      data: [nw.x, nw.y, se.x, se.y],
      window: [window.innerWidth, window.innerHeight],
      panelsRight: document.getElementById("panels").getBoundingClientRect().right,
    };
  });
  await page.setViewportSize({ width: 1200, height: 800 });
  await page.waitForTimeout(300);
  const share = () =>
    page.evaluate(() => {
      const map = document.getElementById("map");
      let hit = 0;
      let all = 0;
      for (let x = 5; x < window.innerWidth; x += 15) {
        for (let y = 5; y < window.innerHeight; y += 15) {
          all += 1;
          if (map.contains(document.elementFromPoint(x, y))) hit += 1;
        }
      }
      return hit / all;
    });
  report.open = await share();
  await page.click("#panels-toggle");
  report.folded = await share();
  report.foldedExpanded = await page.getAttribute("#panels-toggle", "aria-expanded");
  await page.reload({ waitUntil: "load" });
  await page.waitForFunction(() => document.body.dataset.loaded === "true");
  report.foldedAfterReload = await share();
  await page.click("#panels-toggle");
  report.reopened = await share();
};
"""


def test_viewer_opens_on_the_data_and_folds_its_panels(server: str, tmp_path: Path) -> None:
    report = viewer_steps(server, tmp_path, "colour", _FOLD)
    result = report["steps"]
    assert isinstance(result, dict)
    # The first view shows the whole imported area in the part of the window the panels leave
    # free, filling it in one direction (not a sliver at an edge).
    left, top, right, bottom = result["view"]["data"]
    width, height = result["view"]["window"]
    free_left = result["view"]["panelsRight"]
    assert free_left <= left < right <= width and 0 <= top < bottom <= height, result["view"]
    assert max((right - left) / (width - free_left), (bottom - top) / height) > 0.7, result["view"]
    # Folded, the panels leave the map at least 90 % of the window; the fold is remembered.
    assert result["open"] < 0.9
    assert result["folded"] >= 0.9
    assert result["foldedExpanded"] == "false"
    assert result["foldedAfterReload"] >= 0.9
    assert result["reopened"] == pytest.approx(result["open"], abs=0.02)

"""The viewer in headless Chromium: loads clean, draws the map, labels get their glyphs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, run_json
from tests.tileserver.conftest import serve_process

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("viewer_check.mjs")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn (``fondplan serve``) over the Liechtenstein import."""
    with serve_process(liechtenstein_url, tmp_path_factory.mktemp("viewer-cache")) as (_, url):
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

"""GIS clients read the raster tiles: OWSLib and GDAL over WMTS and XYZ, QGIS connection files."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from owslib.wmts import WebMapTileService
from PIL import Image

from osmimport.mercator import lonlat_to_mercator
from osmimport.paths import styles_dir
from osmimport.settings import DatabaseSettings
from tests.tileserver.conftest import free_port
from tileserver.app import create_app
from tileserver.settings import CacheSettings, Settings

STYLE = "colour"
VADUZ = (9.5209, 47.1410)


@pytest.fixture(scope="module")
def server(liechtenstein_url: str) -> Iterator[str]:
    """A real uvicorn serving the app; yields its base URL."""
    settings = Settings(
        database=DatabaseSettings(database_url=liechtenstein_url), cache=CacheSettings(disk=False)
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=30)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    x, y = lonlat_to_mercator(lon, lat)
    half = 20037508.342789244
    return int((x + half) / (2 * half) * 2**z), int((half - y) / (2 * half) * 2**z)


def test_owslib_reads_capabilities_and_fetches_a_tile(server: str) -> None:
    wmts = WebMapTileService(f"{server}/styles/{STYLE}/wmts.xml")
    assert STYLE in wmts.contents
    layer = wmts.contents[STYLE]
    assert "image/png" in layer.formats
    assert "GoogleMapsCompatible" in layer.tilematrixsetlinks
    matrices = wmts.tilematrixsets["GoogleMapsCompatible"].tilematrix
    assert matrices["0"].matrixwidth == 1 and matrices["14"].matrixwidth == 2**14
    # OGC's 0.28 mm pixel: the scale of zoom 0 is the world's width over 256 px.
    assert abs(matrices["0"].scaledenominator - 559082264.0287178) < 1e-3
    assert "OpenStreetMap contributors" in (wmts.identification.abstract or "")
    west, south, east, north = layer.boundingBoxWGS84
    assert west <= VADUZ[0] <= east and south <= VADUZ[1] <= north
    x, y = tile_of(*VADUZ, 14)
    tile = wmts.gettile(
        layer=STYLE, tilematrixset="GoogleMapsCompatible", tilematrix="14", row=y, column=x
    )
    image = decode(tile.read())
    assert image.shape == (256, 256, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    # Every style is a layer of /styles/wmts.xml.
    every = WebMapTileService(f"{server}/styles/wmts.xml")
    assert set(every.contents) == {p.stem for p in styles_dir().glob("*.json")}


def _gdal_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GDAL_ENABLE_WMS_CACHE": "NO",
            "GDAL_HTTP_TIMEOUT": "60",
            "NO_PROXY": "127.0.0.1,localhost",
            "CPL_VSIL_CURL_CACHE_SIZE": "0",
        }
    )
    return env


def _vaduz_window(half_size_m: float = 800) -> list[str]:
    cx, cy = lonlat_to_mercator(*VADUZ)
    return [
        str(cx - half_size_m),
        str(cy + half_size_m),
        str(cx + half_size_m),
        str(cy - half_size_m),
    ]


def _gdal(args: list[str], tmp_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """A GDAL command run in ``tmp_path`` with its own cache settings; it must succeed."""
    run = subprocess.run(
        args, capture_output=True, text=True, env=_gdal_env(tmp_path), cwd=tmp_path, timeout=timeout
    )
    assert run.returncode == 0, run.stderr
    return run


def _assert_gdal_draws_vaduz(source: str, out: Path, tmp_path: Path) -> None:
    """gdal_translate cuts Vaduz from ``source`` into a 256 px PNG that shows a real map."""
    size = ["-outsize", "256", "256"]
    window = ["-projwin", *_vaduz_window()]
    _gdal(["gdal_translate", "-of", "PNG", *size, *window, source, str(out)], tmp_path, 300)
    image = decode(out.read_bytes())
    assert image.shape == (256, 256, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20


def test_gdal_reads_the_wmts(server: str, tmp_path: Path) -> None:
    source = f"WMTS:{server}/styles/{STYLE}/wmts.xml"
    info = _gdal(["gdalinfo", source], tmp_path, 120)
    assert "Driver: WMTS" in info.stdout
    assert "3857" in info.stdout
    _assert_gdal_draws_vaduz(source, tmp_path / "wmts.png", tmp_path)


def test_gdal_reads_the_xyz_url(server: str, tmp_path: Path) -> None:
    xml = tmp_path / "xyz.xml"
    half = "20037508.342789244"
    xml.write_text(
        "<GDAL_WMS>"
        f'<Service name="TMS"><ServerUrl>{server}/styles/{STYLE}/${{z}}/${{x}}/${{y}}.png'
        "</ServerUrl></Service>"
        f"<DataWindow><UpperLeftX>-{half}</UpperLeftX><UpperLeftY>{half}</UpperLeftY>"
        f"<LowerRightX>{half}</LowerRightX><LowerRightY>-{half}</LowerRightY>"
        "<TileLevel>18</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY>"
        "<YOrigin>top</YOrigin></DataWindow>"
        "<Projection>EPSG:3857</Projection><BlockSizeX>256</BlockSizeX>"
        "<BlockSizeY>256</BlockSizeY><BandsCount>4</BandsCount>"
        "</GDAL_WMS>",
        encoding="utf-8",
    )
    _assert_gdal_draws_vaduz(str(xml), tmp_path / "xyz.png", tmp_path)


def test_qgis_connection_files(server: str) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.example.org"}
    roots = {
        "xyz": ("qgsXYZTilesConnections", "xyztiles"),
        "vectortile": ("qgsVectorTileConnections", "vectortile"),
        "wmts": ("qgsWMSConnections", "wms"),
    }
    styles = {p.stem for p in styles_dir().glob("*.json")}
    for kind, (root_tag, row_tag) in roots.items():
        response = httpx.get(f"{server}/qgis-connections.xml?kind={kind}", headers=headers)
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        root = ET.fromstring(response.text.split("\n", 1)[1])
        assert root.tag == root_tag
        rows = root.findall(row_tag)
        assert len(rows) == len(styles)
        for row in rows:
            assert row.get("url", "").startswith("https://maps.example.org/")
        if kind == "vectortile":
            assert all(r.get("styleUrl", "").endswith(".json") for r in rows)
            assert all(r.get("url", "").endswith("{z}/{x}/{y}.mvt") for r in rows)
    bad = httpx.get(f"{server}/qgis-connections.xml?kind=nope")
    assert bad.status_code == 400
    assert bad.json()["detail"]
    # WMTS URLs are absolute too, following the proxy headers.
    caps = httpx.get(f"{server}/styles/{STYLE}/wmts.xml", headers=headers).text
    assert f"https://maps.example.org/styles/{STYLE}/{{TileMatrix}}" in caps
    assert httpx.get(f"{server}/styles/nope/wmts.xml").status_code == 404

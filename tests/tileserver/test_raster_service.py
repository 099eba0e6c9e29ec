"""Raster service: shared glyph disk cache, render process recycling, TileJSON, attribution."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from osmimport.settings import DatabaseSettings
from tests.tileserver.conftest import tile_settings
from tests.tileserver.glyph_proto import decode as decode_glyphs
from tileserver.app import create_app
from tileserver.diskcache import unseal, write_sealed
from tileserver.glyphs import encode_range
from tileserver.raster import (
    ATTRIBUTION_TEXT,
    ImageRequest,
    RasterPool,
    RasterSettings,
    TileRequest,
    draw_attribution,
)
from tileserver.settings import CacheSettings, Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

STYLE = "colour"
VADUZ = (9.5209, 47.1410)
FONTSTACK = "Noto Sans Regular,DejaVu Sans Book"


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def client(liechtenstein_url: str, data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        database=DatabaseSettings(database_url=liechtenstein_url, data_dir=data_dir),
        cache=CacheSettings(disk=False),
    )
    mp = pytest.MonkeyPatch()
    mp.delenv("FONDPLAN_GLYPH_CACHE_DIR", raising=False)
    try:
        with TestClient(create_app(settings)) as c:
            yield c
    finally:
        mp.undo()


# --- glyph disk cache -----------------------------------------------------------------------


def test_glyph_route_writes_the_data_dirs_disk_cache(client: TestClient, data_dir: Path) -> None:
    response = client.get("/fonts/Noto Sans Bold/256-511.pbf")
    assert response.status_code == 200
    files = list((data_dir / "cache" / "glyphs").rglob("256-511.pbf"))
    assert len(files) == 1
    assert unseal(files[0].read_bytes()) == (b"", response.content)
    assert decode_glyphs(response.content).stacks[0].range == "256-511"


def test_render_process_reads_glyphs_from_the_shared_disk_cache(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    """Labels come from the cache files: emptied files give a render without any text."""
    request = ImageRequest(STYLE, lon=VADUZ[0], lat=VADUZ[1], zoom=14, width=400, height=300)

    def render() -> np.ndarray:
        pool = RasterPool(database_url=liechtenstein_url, glyph_cache_dir=tmp_path)
        try:
            return decode(pool.render(request))
        finally:
            pool.close()

    labelled = render()
    cached = sorted(tmp_path.rglob("*.pbf"))
    assert any(path.name == "0-255.pbf" for path in cached), cached
    assert not list(tmp_path.rglob("*.tmp"))
    # Replace every cached range by one without glyphs; a fresh process must use them.
    for path in cached:
        sealed = unseal(path.read_bytes())
        assert sealed is not None
        stack = decode_glyphs(sealed[1]).stacks[0]
        start, end = (int(v) for v in stack.range.split("-"))
        write_sealed(path, encode_range(stack.name, start, end, []))
    unlabelled = render()
    assert labelled.shape == unlabelled.shape
    changed = np.abs(labelled - unlabelled).sum(axis=2) > 60
    assert changed.mean() > 0.002, "the labels did not change: the cache was not read"


def test_concurrent_processes_share_one_cache_file(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tileserver.glyphs import GlyphBuilder;"
        f"GlyphBuilder(cache_dir=Path(sys.argv[1])).glyph_range({FONTSTACK!r}, 512, 767)"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    files = list(tmp_path.rglob("512-767.pbf"))
    assert len(files) == 1
    assert not list(tmp_path.rglob("*.tmp"))
    sealed = unseal(files[0].read_bytes())
    assert sealed is not None
    stack = decode_glyphs(sealed[1]).stacks[0]
    assert stack.range == "512-767" and len(stack.glyphs) > 50


# --- render process recycling ---------------------------------------------------------------


def test_render_process_is_replaced_after_max_renders(liechtenstein_url: str) -> None:
    pool = RasterPool(database_url=liechtenstein_url, settings=RasterSettings(max_renders=3))
    x, y = tile_of(*VADUZ, 13)
    pids: list[int] = []
    try:
        for i in range(7):
            png = pool.render(TileRequest(STYLE, 13, x + i % 2, y))
            assert decode(png).shape == (256, 256, 3)
            assert pool.pid is not None
            pids.append(pool.pid)
        assert pool.recycles == 2
        assert len(set(pids)) == 3
        assert pids[0:3] == [pids[0]] * 3 and pids[3:6] == [pids[3]] * 3
        # The retired processes exit on their own.
        deadline = time.monotonic() + 30
        while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                  for pid in set(pids[:6])):  # fmt: skip
            assert time.monotonic() < deadline, "a retired render process did not exit"
            time.sleep(0.1)
    finally:
        pool.close()


def test_renders_in_flight_survive_a_recycle(liechtenstein_url: str) -> None:
    pool = RasterPool(database_url=liechtenstein_url, settings=RasterSettings(max_renders=2))
    x, y = tile_of(*VADUZ, 14)
    try:
        futures = [pool.submit(TileRequest(STYLE, 14, x + i, y)) for i in range(6)]
        images = [decode(future.result(timeout=120)) for future in futures]
        assert all(image.shape == (256, 256, 3) for image in images)
        assert pool.recycles == 2
        # Different tiles, different pictures: every answer is the one asked for.
        assert len({image.tobytes() for image in images}) == 6
    finally:
        pool.close()


# --- TileJSON and attribution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "size", "prefix"),
    [
        (f"/styles/{STYLE}/tiles.json", 256, f"/styles/{STYLE}/"),
        (f"/styles/256/{STYLE}.json", 256, f"/styles/{STYLE}/"),
        (f"/styles/512/{STYLE}.json", 512, f"/styles/{STYLE}/512/"),
    ],
)
def test_raster_tilejson(client: TestClient, path: str, size: int, prefix: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    doc = response.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tileSize"] == size and doc["format"] == "png"
    assert "OpenStreetMap contributors" in doc["attribution"]
    (template,) = doc["tiles"]
    assert template == f"http://testserver{prefix}{{z}}/{{x}}/{{y}}.png"
    west, south, east, north = doc["bounds"]
    assert west < VADUZ[0] < east and south < VADUZ[1] < north
    x, y = tile_of(*VADUZ, 14)
    url = template.format(z=14, x=x, y=y).removeprefix("http://testserver")
    tile = client.get(url)
    assert tile.status_code == 200
    assert decode(tile.content).shape == (size, size, 3)
    # The style document keeps its URL.
    assert "layers" in client.get(f"/styles/{STYLE}.json").json()


def test_raster_tilejson_errors_and_attribution_passed_on(client: TestClient) -> None:
    for path in ("/styles/nope/tiles.json", f"/styles/300/{STYLE}.json", "/styles/512/nope.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "detail" in response.json()
    doc = client.get(f"/styles/{STYLE}/tiles.json?attribution=1").json()
    assert doc["tiles"][0].endswith(".png?attribution=1")


@pytest.mark.parametrize(("size", "scale"), [(256, 1), (512, 1), (256, 2)])
def test_attribution_is_drawn_in_the_corner_only(client: TestClient, size: int, scale: int) -> None:
    x, y = tile_of(*VADUZ, 15)
    prefix = f"/styles/{STYLE}" + ("" if size == 256 else f"/{size}")
    name = f"{y}" + ("" if scale == 1 else f"@{scale}x")
    plain = client.get(f"{prefix}/15/{x}/{name}.png")
    marked = client.get(f"{prefix}/15/{x}/{name}.png?attribution=1")
    assert plain.status_code == marked.status_code == 200
    a, b = decode(plain.content), decode(marked.content)
    side = size * scale
    assert a.shape == b.shape == (side, side, 3)
    diff = np.abs(a - b).sum(axis=2) > 0
    rows, cols = np.nonzero(diff)
    assert len(rows) > 0
    # Only a box in the bottom-right corner changes, about one text line high.
    assert rows.min() > side * 0.85 and cols.min() > side * 0.2
    assert rows.max() == side - 1 and cols.max() == side - 1
    # Dark text on a light box.
    corner = b[rows.min() :, cols.min() :]
    assert (corner.sum(axis=2) < 300).sum() > 20 * scale
    assert (corner.sum(axis=2) > 600).mean() > 0.4
    # Each variant has its own cache entry and ETag.
    assert plain.headers["etag"] != marked.headers["etag"]
    again = client.get(
        f"{prefix}/15/{x}/{name}.png?attribution=1",
        headers={"if-none-match": plain.headers["etag"]},
    )
    assert again.status_code == 200 and again.content == marked.content
    cached = client.get(
        f"{prefix}/15/{x}/{name}.png?attribution=1",
        headers={"if-none-match": marked.headers["etag"]},
    )
    assert cached.status_code == 304


def test_attribution_flag_is_checked(client: TestClient) -> None:
    response = client.get(f"/styles/{STYLE}/10/538/359.png?attribution=maybe")
    assert response.status_code == 400
    assert "attribution" in response.json()["detail"]
    off = client.get(f"/styles/{STYLE}/10/538/359.png?attribution=0")
    plain = client.get(f"/styles/{STYLE}/10/538/359.png")
    assert off.status_code == 200 and off.content == plain.content


def test_draw_attribution_shrinks_to_fit_narrow_images() -> None:
    def box_width(width: int) -> int:
        out = io.BytesIO()
        Image.new("RGB", (width, 40), (200, 230, 255)).save(out, format="PNG")
        marked = decode(draw_attribution(out.getvalue()))
        assert marked.shape == (40, width, 3)
        cols = np.nonzero((marked != [200, 230, 255]).any(axis=2))[1]
        assert cols.max() == width - 1
        return int(width - cols.min())

    wide, narrow = box_width(512), box_width(120)
    assert narrow <= 120 < wide
    assert ATTRIBUTION_TEXT.startswith("©")


# --- a server reading a tiles file ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiles_file(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tileserver.cli import main

    folder = tmp_path_factory.mktemp("archive")
    out = folder / "vaduz.pmtiles"
    mp = pytest.MonkeyPatch()
    mp.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    mp.setenv("FONDPLAN_CACHE_DIR", str(folder / "cache"))
    try:
        bbox = "9.50,47.12,9.54,47.16"
        assert main(["export", str(out), "--bbox", bbox, "--maxzoom", "13", "--jobs", "2"]) == 0
    finally:
        mp.undo()
    return out


def test_tiles_file_server_answers_townplans_with_404_and_still_renders(
    tiles_file: Path, tmp_path: Path
) -> None:
    settings = tile_settings(
        "postgresql://nobody@127.0.0.1:1/none", tmp_path, tiles_file=tiles_file
    )
    with TestClient(create_app(settings)) as c:
        for path in ("/townplans/communes.json", "/townplans/Vaduz", "/townplans/Vaduz?paper=A4"):
            response = c.get(path)
            assert response.status_code == 404, path
            detail = response.json()["detail"]
            assert "database" in detail and tiles_file.name in detail
        panel = c.get("/townplans/panel.js")
        assert panel.status_code == 200
        assert panel.headers["content-type"].startswith("text/javascript")
        # The raster tiles are drawn from the file.
        x, y = tile_of(*VADUZ, 13)
        tile = c.get(f"/styles/{STYLE}/13/{x}/{y}.png")
        assert tile.status_code == 200
        image = decode(tile.content)
        assert image.shape == (256, 256, 3)
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20

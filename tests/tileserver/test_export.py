"""Seeding and PMTiles/MBTiles export: every archived tile equals the served one."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest
from pmtiles.reader import MmapSource, all_tiles
from pmtiles.reader import Reader as PMTilesReader

from osmimport.importer import read_meta
from tests.tileserver.conftest import TestClient, tile_settings
from tileserver.app import create_app
from tileserver.cli import main
from tileserver.tiling import tiles_in_bbox

MAX_TILE_BYTES = 500 * 1024


@pytest.fixture(scope="module")
def data_bbox(liechtenstein_url: str) -> tuple[float, float, float, float]:
    meta = read_meta(liechtenstein_url)
    assert meta is not None
    west, south, east, north = meta["bbox"]
    return west, south, east, north


@pytest.fixture(scope="module")
def exported(liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    mp.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    mp.setenv("FONDPLAN_CACHE_DIR", str(folder / "cache"))
    try:
        files = {}
        for suffix in ("pmtiles", "mbtiles"):
            out = folder / f"basemap.{suffix}"
            assert main(["export", str(out), "--jobs", "2"]) == 0
            files[suffix] = out
    finally:
        mp.undo()
    return files


def served(client: TestClient, z: int, x: int, y: int) -> bytes:
    response = client.get(
        f"/tiles/basemap/{z}/{x}/{y}.mvt", headers={"accept-encoding": "identity"}
    )
    assert response.status_code in (200, 204), (z, x, y, response.status_code)
    return response.content


def test_pmtiles_tiles_equal_served_tiles(
    exported: dict[str, Path],
    tile_client: TestClient,
    data_bbox: tuple[float, float, float, float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with exported["pmtiles"].open("rb") as fh:
        source = MmapSource(fh)
        header = PMTilesReader(source).header()
        assert header["tile_type"].name == "MVT"
        assert (header["min_zoom"], header["max_zoom"]) == (0, 14)
        archived = {(z, x, y): gzip.decompress(data) for (z, x, y), data in all_tiles(source)}
        metadata = PMTilesReader(source).metadata()
    assert metadata["vector_layers"]
    expected = list(tiles_in_bbox(data_bbox, 0, 14))
    assert set(archived) <= set(expected)
    largest = (0, None)
    for z, x, y in expected:
        body = served(tile_client, z, x, y)
        assert archived.get((z, x, y), b"") == body, (z, x, y)
        assert len(body) < MAX_TILE_BYTES, (z, x, y, len(body))
        largest = max(largest, (len(body), (z, x, y)), key=lambda item: item[0])
    assert len(archived) > 100
    with capsys.disabled():
        print(f"\nlargest tile over z0-14: {largest[0] / 1024:.0f} KiB at {largest[1]}")


def test_mbtiles_tiles_equal_served_tiles(
    exported: dict[str, Path],
    tile_client: TestClient,
) -> None:
    conn = sqlite3.connect(exported["mbtiles"])
    try:
        meta = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
        rows = conn.execute(
            "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles"
        ).fetchall()
    finally:
        conn.close()
    assert meta["format"] == "pbf"
    assert "vector_layers" in meta["json"]
    assert len(rows) > 100
    for z, x, tms_y, data in rows:
        y = (1 << z) - 1 - tms_y
        assert gzip.decompress(data) == served(tile_client, z, x, y), (z, x, y)


@pytest.mark.parametrize("suffix", ["pmtiles", "mbtiles"])
def test_serving_an_archive_needs_no_database(
    exported: dict[str, Path],
    tile_client: TestClient,
    tmp_path: Path,
    suffix: str,
    data_bbox: tuple[float, float, float, float],
) -> None:
    settings = tile_settings(
        "postgresql://nobody@127.0.0.1:1/none", tmp_path, tiles_file=exported[suffix]
    )
    with TestClient(create_app(settings)) as client:
        doc = client.get("/tiles/basemap.json").json()
        assert doc["vector_layers"]
        assert doc["bounds"] == pytest.approx(list(data_bbox), abs=1e-5)
        for z, x, y in list(tiles_in_bbox(data_bbox, 10, 13)):
            assert served(client, z, x, y) == served(tile_client, z, x, y), (z, x, y)
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["database"] == "not used"


def test_seed_fills_the_disk_cache(
    liechtenstein_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    monkeypatch.setenv("FONDPLAN_CACHE_DIR", str(tmp_path))
    assert main(["seed", "--minzoom", "8", "--maxzoom", "10"]) == 0
    version = read_meta(liechtenstein_url)["data_version"]  # type: ignore[index]
    cached = list((tmp_path / version).rglob("*.mvt.gz"))
    meta = read_meta(liechtenstein_url)
    assert meta is not None
    assert len(cached) == len(list(tiles_in_bbox(tuple(meta["bbox"]), 8, 10)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "out.txt"],
        ["seed", "--bbox", "1,2,3"],
        ["seed", "--bbox", "10,50,5,40"],
        ["seed", "--minzoom", "9", "--maxzoom", "3"],
        ["serve", "--tiles", "missing.pmtiles"],
        ["serve", "--tiles", "basemap.txt"],
    ],
)
def test_cli_user_errors(
    argv: list[str],
    liechtenstein_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    monkeypatch.setenv("FONDPLAN_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err

"""TileJSON bounds and center come from the imported map, not from outlying boundary nodes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from osmimport.importer import read_meta, run_import
from tests.osmimport.opl import Opl
from tests.tileserver.conftest import TestClient, tile_settings
from tileserver.app import create_app

ROOT = Path(__file__).resolve().parents[2]
MULHOUSE_CENTRE = ROOT / "data" / "sample" / "mulhouse-centre.osm.pbf"


def tilejson(url: str, cache: Path) -> dict[str, Any]:
    with TestClient(create_app(tile_settings(url, cache))) as client:
        response = client.get("/tiles/basemap.json")
        assert response.status_code == 200
        doc: dict[str, Any] = response.json()
        return doc


def test_an_outlying_boundary_node_moves_neither_bounds_nor_center(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    # Mulhouse, and a national boundary way reaching far into the Atlantic.
    opl = tmp_path / "far.opl"
    opl.write_text(
        "n9000000001 v1 x7.33 y47.75 T\n"
        "n9000000002 v1 x-30.0 y40.0 T\n"
        "w9000000001 v1 Tboundary=administrative,admin_level=2,maritime=yes "
        "Nn9000000001,n9000000002\n"
        "r9000000001 v1 Ttype=boundary,boundary=administrative,admin_level=2,name=Far "
        "Mw9000000001@outer\n",
        encoding="utf-8",
    )
    merged = tmp_path / "with-far.osm.pbf"
    subprocess.run(
        ["osmium", "merge", "-O", str(MULHOUSE_CENTRE), str(opl), "-o", str(merged)],
        check=True,
        capture_output=True,
    )
    plain, far = make_database(), make_database()
    run_import(plain, [MULHOUSE_CENTRE])
    run_import(far, [merged])
    meta = read_meta(far)
    assert meta is not None and meta["counts"]["boundaries"] >= 1
    near_doc, far_doc = tilejson(plain, tmp_path / "c1"), tilejson(far, tmp_path / "c2")
    assert far_doc["bounds"] == near_doc["bounds"]
    assert far_doc["center"] == near_doc["center"]
    west, south, east, north = far_doc["bounds"]
    assert 7.3 < west < east < 7.4 and 47.7 < south < north < 47.8
    lon, lat, _ = far_doc["center"]
    assert west <= lon <= east and south <= lat <= north


def test_center_lies_on_the_data_of_two_distant_extracts(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    # Two towns 300 km apart: the middle of their box is in neither, the center is on one.
    opl = Opl()
    for way_id, x in ((1, 7.33), (2, 10.33)):
        opl.line(way_id, x, 47.75, highway="residential", name=f"Rue {way_id}")
        opl.square(10 + way_id, x, 47.751, building="yes")
    url = make_database()
    run_import(url, [opl.write(tmp_path / "two.opl")])
    doc = tilejson(url, tmp_path / "cache")
    west, _, east, _ = doc["bounds"]
    assert west < 7.34 and east > 10.33
    lon, lat, _ = doc["center"]
    assert min(abs(lon - 7.335), abs(lon - 10.335)) < 0.01
    assert lat == pytest.approx(47.75, abs=0.01)

"""Data imported without generalised tables is still served: low zooms read full detail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mapbox_vector_tile
import psycopg2

from osmimport import schema
from osmimport.importer import run_import
from tests.conftest import LIECHTENSTEIN
from tests.tileserver.conftest import VADUZ, TestClient, tile_of, tile_settings
from tileserver.app import create_app


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema.SCHEMA,),
        )
        return {row[0] for row in cur.fetchall()}


def test_layer_tables_for_zoom_prefer_generalised_then_full() -> None:
    streets = schema.LAYER_BY_NAME["streets"]
    assert streets.generalised
    first = min(streets.generalised)
    assert streets.tables_for_zoom(first) == [
        *(f"streets_z{g}" for g in sorted(streets.generalised)),
        "streets",
    ]
    assert streets.tables_for_zoom(max(streets.generalised) + 1) == ["streets"]
    assert streets.table_for_zoom(first) == f"streets_z{first}"


def test_import_without_generalised_tables_serves_low_zooms(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    run_import(url, [LIECHTENSTEIN], generalise=False)
    tables = _tables(url)
    generalised = {f"{layer.name}_z{g}" for layer in schema.LAYERS for g in layer.generalised}
    assert generalised and not generalised & tables
    zoom = min(schema.LAYER_BY_NAME["streets"].generalised)
    x, y = tile_of(*VADUZ, zoom)
    with TestClient(create_app(tile_settings(url, tmp_path / "cache"))) as client:
        response = client.get(f"/tiles/basemap/{zoom}/{x}/{y}.mvt")
        assert response.status_code == 200
        layers = mapbox_vector_tile.decode(response.content)
        assert layers["streets"]["features"], "streets read from the full-detail table"
        fields = {
            layer["id"]: layer["fields"]
            for layer in client.get("/tiles/basemap.json").json()["vector_layers"]
        }
        assert "kind" in fields["streets"]

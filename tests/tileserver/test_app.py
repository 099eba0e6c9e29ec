"""The app around the tiles: styles, health, metrics, viewer files, route groups, data versions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import mapbox_vector_tile
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from osmimport.importer import run_import
from osmimport.paths import styles_dir
from tests.conftest import LIECHTENSTEIN
from tests.tileserver.conftest import VADUZ, TestClient, tile_of, tile_settings
from tileserver.app import create_app


def test_styles_are_listed_and_served_with_absolute_urls(tile_client: TestClient) -> None:
    listing = tile_client.get("/styles").json()
    shipped = sorted(p.stem for p in styles_dir().glob("*.json"))
    assert [item["id"] for item in listing] == shipped
    assert tile_client.get("/styles.json").json() == listing
    for item in listing:
        assert item["url"] == f"http://testserver/styles/{item['id']}.json"
        response = tile_client.get(f"/styles/{item['id']}.json")
        assert response.status_code == 200
        text = response.text
        assert "fondplan://" not in text
        style = json.loads(text)
        assert style["version"] == 8
        raw = (styles_dir() / f"{item['id']}.json").read_text()
        if "fondplan://tiles/basemap.json" in raw:
            assert any(
                s.get("url") == "http://testserver/tiles/basemap.json"
                for s in style["sources"].values()
            )


def test_style_urls_follow_forwarded_headers(tile_client: TestClient) -> None:
    style = tile_client.get(
        "/styles/colour.json",
        headers={"x-forwarded-proto": "https", "x-forwarded-host": "carte.example.fr"},
    ).json()
    assert style["glyphs"].startswith("https://carte.example.fr/fonts/")
    assert all(
        s["url"].startswith("https://carte.example.fr/")
        for s in style["sources"].values()
        if "url" in s
    )


def test_documents_carry_etags_and_answer_304(tile_client: TestClient) -> None:
    for path in ("/styles/colour.json", "/styles/colour/wmts.xml", "/styles/colour/tiles.json"):
        first = tile_client.get(path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('"'), path
        for header in (etag, f'W/{etag}, "other"'):
            again = tile_client.get(path, headers={"if-none-match": header})
            assert again.status_code == 304 and again.content == b"", (path, header)
            assert again.headers["etag"] == etag
        assert tile_client.get(path, headers={"if-none-match": '"other"'}).status_code == 200
    # The document names the host it was asked at: another host, another tag.
    moved = tile_client.get("/styles/colour.json", headers={"x-forwarded-host": "maps.example"})
    assert moved.headers["etag"] != tile_client.get("/styles/colour.json").headers["etag"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fonts/Comic Nope Regular/0-255.pbf", 404),
        ("/fonts/Noto Sans Regular/1-256.pbf", 400),
        ("/sprites/nope.json", 404),
        ("/sprites/fondplan@9x.png", 400),
    ],
)
def test_glyph_and_sprite_errors_go_through_the_error_map(
    tile_client: TestClient, path: str, status: int
) -> None:
    response = tile_client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]


def test_unknown_style_is_404_json(tile_client: TestClient) -> None:
    for path in ("/styles/nope.json", "/styles/..%2Fpyproject.json", "/styles/a%20b.json"):
        response = tile_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]


def test_public_url_setting_wins(liechtenstein_url: str, tmp_path: Path) -> None:
    settings = tile_settings(liechtenstein_url, tmp_path, public_url="https://tiles.example.org/")
    with TestClient(create_app(settings)) as client:
        doc = client.get("/tiles/basemap.json", headers={"x-forwarded-host": "other"}).json()
        assert doc["tiles"] == ["https://tiles.example.org/tiles/basemap/{z}/{x}/{y}.mvt"]
        style = client.get("/styles/colour.json").json()
        assert style["sources"]["basemap"]["url"] == "https://tiles.example.org/tiles/basemap.json"


def test_health_reports_database_and_version(tile_client: TestClient) -> None:
    deadline = time.monotonic() + 120
    while (response := tile_client.get("/health")).json()["status"] == "loading":
        assert response.status_code == 200
        assert time.monotonic() < deadline, "the routing data never loaded"
        time.sleep(0.1)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert all(profile["loaded"] for profile in body["routing"]["profiles"].values())
    assert (
        body["data_version"]
        == tile_client.get("/tiles/basemap.json").json()["fondplan:data_version"]
    )


def test_health_is_degraded_when_the_database_is_gone(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    from osmimport.database import drop_database

    url = make_database()
    settings = tile_settings(url, tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        admin = url.rsplit("/", 1)[0] + "/postgres"
        drop_database(admin, url.rsplit("/", 1)[1])
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["database"] == "unavailable"
        tile = client.get("/tiles/basemap/14/8625/5753.mvt")
        assert tile.status_code == 503
        assert tile.json()["detail"] == "the database is unavailable; try again shortly"
        assert tile.headers["retry-after"].isdigit()


def test_metrics_count_requests_tiles_and_cache(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 11)
    for _ in range(3):
        tile_client.get(f"/tiles/basemap/11/{x}/{y}.mvt")
    tile_client.get("/tiles/basemap/99/0/0.mvt")
    text = tile_client.get("/metrics").text
    lines = text.splitlines()

    def value(prefix: str) -> float:
        found = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix)]
        assert found, prefix
        return sum(found)

    assert value('fondplan_http_requests_total{route="tile",method="GET",status="200"}') >= 3
    assert value('fondplan_http_requests_total{route="tile",method="GET",status="404"}') >= 1
    assert value('fondplan_tile_cache_total{level="memory",outcome="hit"}') >= 2
    assert value('fondplan_tile_seconds_bucket{source="memory",le="+Inf"}') >= 2
    assert value('fondplan_tile_seconds_count{source="memory"}') >= 2
    assert "# TYPE fondplan_tile_seconds histogram" in text


def test_viewer_page_and_vendor_files_are_local(tile_client: TestClient) -> None:
    page = tile_client.get("/")
    assert page.status_code == 200
    assert "static/vendor/maplibre-gl/maplibre-gl.js" in page.text
    assert "//unpkg" not in page.text and "cdn" not in page.text.lower()
    for path in (
        "/static/vendor/maplibre-gl/maplibre-gl.js",
        "/static/vendor/maplibre-gl/maplibre-gl.css",
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.js",
        "/static/viewer.js",
    ):
        response = tile_client.get(path)
        assert response.status_code == 200, path
        assert len(response.content) > 1000, path


def test_route_groups_can_be_disabled_and_extended(liechtenstein_url: str, tmp_path: Path) -> None:
    def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("bonjour")

    settings = tile_settings(liechtenstein_url, tmp_path, disable=frozenset({"viewer", "ops"}))
    app = create_app(settings, extra_routes=[Route("/hello", hello)])
    with TestClient(app) as client:
        assert client.get("/hello").text == "bonjour"
        assert client.get("/").status_code == 404
        assert client.get("/health").status_code == 404
        assert client.get("/tiles/basemap.json").status_code == 200


def test_new_import_changes_the_tiles_served(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    """A re-import NOTIFYs a new data version: cached tiles of the old one are not served."""
    url = make_database()
    first = run_import(url, [LIECHTENSTEIN])
    settings = tile_settings(url, tmp_path)
    x, y = tile_of(*VADUZ, 14)
    path = f"/tiles/basemap/14/{x}/{y}.mvt"
    with TestClient(create_app(settings)) as client:
        before = client.get(path)
        assert client.get("/health").json()["data_version"] == first.data_version
        second = run_import(url, [LIECHTENSTEIN])
        assert second.data_version != first.data_version
        deadline = time.monotonic() + 60
        while client.get("/health").json()["data_version"] != second.data_version:
            assert time.monotonic() < deadline, "the server never saw the new data version"
            time.sleep(0.2)
        after = client.get(path)
        assert after.headers["etag"] != before.headers["etag"]
        assert mapbox_vector_tile.decode(after.content).keys() == (
            mapbox_vector_tile.decode(before.content).keys()
        )
        cached_dirs = {p.name for p in tmp_path.iterdir()}
        assert second.data_version.replace(":", "_") in cached_dirs

"""Vector tiles over HTTP: content decoded with mapbox-vector-tile, caching headers, errors."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import osmium
import pytest

from osmimport import schema
from osmimport.importer import read_meta
from osmimport.mercator import tile_bounds
from tests.conftest import LIECHTENSTEIN
from tests.tileserver.conftest import VADUZ, TestClient, tile_of
from tileserver.cache import DiskCache, make_tile
from tileserver.catalog import TILE_FORMAT

ZOOM = 14
STREET_KINDS = {"primary", "secondary", "tertiary", "residential", "unclassified", "living_street"}
POI_AMENITIES = {"restaurant", "cafe", "pharmacy", "bank", "fast_food", "bar", "pub"}


class _Collector(osmium.SimpleHandler):  # type: ignore[misc]
    """Names of OSM objects well inside a bbox, read straight from the PBF."""

    def __init__(self, bbox: tuple[float, float, float, float]) -> None:
        super().__init__()
        west, south, east, north = bbox
        # Stay clear of the edges: features there may be cut off or belong to neighbours.
        dx, dy = (east - west) * 0.1, (north - south) * 0.1
        self.box = (west + dx, south + dy, east - dx, north - dy)
        self.streets: set[str] = set()
        self.street_kinds: set[str] = set()
        self.places: set[str] = set()
        self.pois: set[str] = set()

    def inside(self, lon: float, lat: float) -> bool:
        w, s, e, n = self.box
        return w < lon < e and s < lat < n

    def node(self, n: Any) -> None:
        if not n.location.valid() or not self.inside(n.location.lon, n.location.lat):
            return
        name = n.tags.get("name")
        if not name:
            return
        if n.tags.get("place") in {"city", "town", "village"}:
            self.places.add(name)
        if n.tags.get("amenity") in POI_AMENITIES:
            self.pois.add(name)

    def way(self, w: Any) -> None:
        name = w.tags.get("name")
        if not name or w.tags.get("highway") not in STREET_KINDS or w.tags.get("area") == "yes":
            return
        if any(nd.location.valid() and self.inside(nd.lon, nd.lat) for nd in w.nodes):
            self.streets.add(name)
            self.street_kinds.add(w.tags["highway"])


@cache
def expected_in_tile(z: int, x: int, y: int) -> _Collector:
    collector = _Collector(tile_bounds(z, x, y))
    collector.apply_file(str(LIECHTENSTEIN), locations=True)
    return collector


def get_tile(client: TestClient, z: int, x: int, y: int, **headers: str) -> Any:
    return client.get(f"/tiles/basemap/{z}/{x}/{y}.mvt", headers=headers)


def decode(content: bytes) -> dict[str, Any]:
    return dict(mapbox_vector_tile.decode(content))


def names(layer: dict[str, Any]) -> set[str]:
    return {f["properties"]["name"] for f in layer["features"] if f["properties"].get("name")}


def test_vaduz_z14_has_streets_places_pois_buildings(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, ZOOM)
    response = get_tile(tile_client, ZOOM, x, y)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    tile = decode(response.content)
    expected = expected_in_tile(ZOOM, x, y)

    assert "Vaduz" in expected.places
    assert expected.places <= names(tile["place_labels"])
    vaduz = [f for f in tile["place_labels"]["features"] if f["properties"].get("name") == "Vaduz"]
    assert vaduz[0]["properties"].get("name_fr") == "Vaduz"

    assert len(expected.streets) > 20
    assert expected.streets <= names(tile["street_labels"])
    street_kinds = {f["properties"]["kind"] for f in tile["streets"]["features"]}
    assert "residential" in expected.street_kinds
    assert expected.street_kinds <= street_kinds

    assert len(expected.pois) > 5
    assert expected.pois <= names(tile["pois"])

    polygons = [f for f in tile["buildings"]["features"] if "Polygon" in f["geometry"]["type"]]
    assert len(polygons) > 100
    assert all(f["geometry"]["type"] == "Point" for f in tile["addresses"]["features"])


def test_named_features_carry_the_french_first_label(tile_client: TestClient) -> None:
    """``name_label`` is ``name_fr``, else ``name``: styles need no ``coalesce`` (QGIS 3.22)."""
    doc = tile_client.get("/tiles/basemap.json").json()
    fields = {layer["id"]: layer["fields"] for layer in doc["vector_layers"]}
    checked = french = 0
    for zoom in (12, ZOOM):  # the Rhine, "Le Rhin" in French, at z12
        tile = decode(get_tile(tile_client, zoom, *tile_of(*VADUZ, zoom)).content)
        for layer_name, layer in tile.items():
            for feature in layer["features"]:
                props = feature["properties"]
                if "name" not in props:
                    continue
                assert fields[layer_name][schema.LABEL_COLUMN] == "String"
                assert props[schema.LABEL_COLUMN] == props.get("name_fr", props["name"])
                checked += 1
                french += props.get("name_fr", props["name"]) != props["name"]
    assert checked > 100 and french > 0


def test_every_layer_only_within_its_zoom_range(tile_client: TestClient) -> None:
    seen: set[str] = set()
    for z in range(0, schema.MAX_ZOOM + 1):
        x, y = tile_of(*VADUZ, z)
        response = get_tile(tile_client, z, x, y)
        assert response.status_code == 200, z
        tile = decode(response.content)
        for name in tile:
            layer = schema.LAYER_BY_NAME[name]
            assert layer.minzoom <= z <= layer.maxzoom, (name, z)
            assert tile[name]["extent"] == 4096
        seen |= set(tile)
    assert {"boundaries", "place_labels", "land", "streets", "buildings", "pois"} <= seen


def _vertices(geometry: dict[str, Any]) -> int:
    def count(coords: Any) -> int:
        if coords and isinstance(coords[0], int | float):
            return 1
        return sum(count(c) for c in coords)

    return count(geometry["coordinates"])


class _BorderNodes(osmium.SimpleHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.ways: set[int] = set()

    def relation(self, r: Any) -> None:
        if r.tags.get("boundary") == "administrative" and r.tags.get("admin_level") == "2":
            self.ways |= {m.ref for m in r.members if m.type == "w"}


def test_z6_boundaries_are_generalised(tile_client: TestClient) -> None:
    relations = _BorderNodes()
    relations.apply_file(str(LIECHTENSTEIN))
    node_count = 0
    for way in osmium.FileProcessor(str(LIECHTENSTEIN), osmium.osm.WAY):
        if way.id in relations.ways:
            node_count += len(way.nodes)
    x, y = tile_of(*VADUZ, 6)
    tile = decode(get_tile(tile_client, 6, x, y).content)
    borders = [f for f in tile["boundaries"]["features"] if f["properties"]["admin_level"] == 2]
    assert borders
    assert all(f["geometry"]["type"] in {"LineString", "MultiLineString"} for f in borders)
    in_tile = sum(_vertices(f["geometry"]) for f in borders)
    assert 2 <= in_tile < node_count / 10
    # Only the big picture at z6: no street, building or POI.
    assert not {"streets", "buildings", "pois", "addresses"} & set(tile)


def test_etag_and_304(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 12)
    first = get_tile(tile_client, 12, x, y, **{"accept-encoding": "gzip"})
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = get_tile(tile_client, 12, x, y, **{"accept-encoding": "gzip"})
    assert again.headers["etag"] == etag and again.content == first.content
    cached = get_tile(tile_client, 12, x, y, **{"accept-encoding": "gzip", "if-none-match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    other = get_tile(tile_client, 12, x + 1, y, **{"accept-encoding": "gzip"})
    assert other.headers["etag"] != etag
    stale = get_tile(tile_client, 12, x, y, **{"accept-encoding": "gzip", "if-none-match": '"0"'})
    assert stale.status_code == 200
    # RFC 9110: weak comparison, lists, several header lines, "*".
    for header in (f'"0", W/{etag}', f"W/{etag}", "*"):
        listed = get_tile(
            tile_client, 12, x, y, **{"accept-encoding": "gzip", "if-none-match": header}
        )
        assert listed.status_code == 304, header
    lines = tile_client.get(
        f"/tiles/basemap/12/{x}/{y}.mvt",
        headers=[("accept-encoding", "gzip"), ("if-none-match", '"0"'), ("if-none-match", etag)],
    )
    assert lines.status_code == 304
    # The identity representation has its own tag.
    plain = get_tile(
        tile_client, 12, x, y, **{"accept-encoding": "identity", "if-none-match": etag}
    )
    assert plain.status_code == 200


def test_tilejson_etag(tile_client: TestClient) -> None:
    first = tile_client.get("/tiles/basemap.json")
    assert first.status_code == 200 and first.headers["etag"].startswith('"')
    again = tile_client.get("/tiles/basemap.json", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == first.headers["cache-control"]


def test_gzip_and_identity_give_the_same_tile(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 13)
    url = f"/tiles/basemap/13/{x}/{y}.mvt"
    with tile_client.stream("GET", url, headers={"accept-encoding": "gzip"}) as response:
        raw_gzip = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in response.headers["vary"]
    plain = tile_client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(raw_gzip) == plain.content
    assert decode(plain.content)["streets"]["features"]
    pbf = tile_client.get(url.replace(".mvt", ".pbf"), headers={"accept-encoding": "identity"})
    assert pbf.content == plain.content
    assert pbf.headers["content-type"] == "application/x-protobuf"


def test_cache_control_and_cors(tile_client: TestClient) -> None:
    x, y = tile_of(*VADUZ, 10)
    response = get_tile(tile_client, 10, x, y, origin="https://partner.example")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age=" in response.headers["cache-control"]
    preflight = tile_client.options(
        f"/tiles/basemap/10/{x}/{y}.mvt",
        headers={"origin": "https://partner.example", "access-control-request-method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_empty_tile_is_204(tile_client: TestClient) -> None:
    response = get_tile(tile_client, 14, 0, 0)  # the Pacific, far from Liechtenstein
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # Outside the world or the zoom range, or another tileset: 404.
        ("/tiles/basemap/15/0/0.mvt", 404),
        ("/tiles/basemap/-1/0/0.mvt", 404),
        ("/tiles/basemap/3/8/0.mvt", 404),
        ("/tiles/basemap/3/0/-1.mvt", 404),
        ("/tiles/elsewhere/3/0/0.mvt", 404),
        ("/tiles/elsewhere.json", 404),
        # Malformed: 400.
        ("/tiles/basemap/a/0/0.mvt", 400),
        ("/tiles/basemap/3/0/zero.mvt", 400),
        ("/tiles/basemap/3/0/0.png", 400),
        ("/tiles/basemap/3/0", 400),
        ("/tiles/basemap/3/0/0/1.mvt", 400),
        ("/tiles/basemap/99999999999/0/0.mvt", 400),
    ],
)
def test_bad_tile_paths_are_answered_json(tile_client: TestClient, path: str, status: int) -> None:
    response = tile_client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail
    if status == 400:
        assert "malformed" in detail or "format" in detail


def test_tilejson(tile_client: TestClient, liechtenstein_url: str) -> None:
    response = tile_client.get("/tiles/basemap.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://testserver/tiles/basemap/{z}/{x}/{y}.mvt"]
    assert (doc["minzoom"], doc["maxzoom"]) == (0, schema.MAX_ZOOM)
    assert [layer["id"] for layer in doc["vector_layers"]] == [lay.name for lay in schema.LAYERS]
    by_id = {layer["id"]: layer for layer in doc["vector_layers"]}
    for layer in schema.LAYERS:
        assert (by_id[layer.name]["minzoom"], by_id[layer.name]["maxzoom"]) == (
            layer.minzoom,
            layer.maxzoom,
        )
        assert isinstance(by_id[layer.name]["fields"], dict)
    assert by_id["street_labels"]["fields"]["name"] == "String"
    assert set(schema.NAME_COLUMNS) <= set(by_id["place_labels"]["fields"])
    assert by_id["place_labels"]["fields"]["population"] == "Number"
    meta = read_meta(liechtenstein_url)
    assert meta is not None
    assert doc["bounds"] == pytest.approx(meta["bbox"], abs=1e-5)
    west, south, east, north = doc["bounds"]
    assert west < VADUZ[0] < east and south < VADUZ[1] < north
    lon, lat, zoom = doc["center"]
    assert west < lon < east and south < lat < north and 0 <= zoom <= 14
    assert "© OpenStreetMap contributors" in doc["attribution"].replace("&copy;", "©")
    assert 'href="https://www.openstreetmap.org/copyright"' in doc["attribution"]
    assert doc["fondplan:data_version"] == meta["data_version"]


def test_tilejson_urls_follow_forwarded_headers(tile_client: TestClient) -> None:
    doc = tile_client.get(
        "/tiles/basemap.json",
        headers={"x-forwarded-proto": "https", "x-forwarded-host": "tiles.example.org"},
    ).json()
    assert doc["tiles"] == ["https://tiles.example.org/tiles/basemap/{z}/{x}/{y}.mvt"]


def test_a_disk_cache_of_older_tiles_is_not_served(tmp_path: Path) -> None:
    """Tiles cut before the tile query changed (e.g. without ``name_label``) stay unread."""
    disk = DiskCache(tmp_path)
    old = tmp_path / "v1" / "14" / "8" / "5.mvt.gz"
    old.parent.mkdir(parents=True)
    old.write_bytes(b'"old"\n' + gzip.compress(b"tile without name_label"))
    assert disk.get(("v1", 14, 8, 5)) is None
    tile = make_tile("v1", b"tile with name_label")
    disk.put(("v1", 14, 8, 5), tile)
    assert disk.get(("v1", 14, 8, 5)) == tile
    assert (tmp_path / "v1" / f"f{TILE_FORMAT}" / "14" / "8" / "5.mvt.gz").is_file()

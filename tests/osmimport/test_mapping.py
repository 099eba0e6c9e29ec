"""Tag -> layer/kind mapping of every Shortbread layer, from inline OPL through a real import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import osmium
import psycopg2
import pytest

from osmimport import schema
from osmimport.importer import ImportSummary, run_import
from tests.conftest import LIECHTENSTEIN
from tests.osmimport.opl import Opl

X, Y = 7.30, 47.70


def _build() -> Opl:
    o = Opl()
    # Water
    o.square(101, X, Y, natural="water", name="Lac Vert", **{"name:de": "Grüner See"})
    o.square(102, X + 0.01, Y, natural="water", water="river")
    o.square(103, X + 0.02, Y, waterway="riverbank")
    o.square(104, X + 0.03, Y, natural="glacier")
    o.square(105, X + 0.04, Y, landuse="reservoir")
    o.square(106, X + 0.05, Y, landuse="basin")
    o.square(107, X + 0.06, Y, waterway="dock")
    o.line(111, X, Y + 0.01, waterway="river", name="Ill")
    o.line(112, X, Y + 0.012, waterway="stream", name="Dollerbaechlein", tunnel="yes")
    o.line(113, X, Y + 0.014, waterway="ditch")
    o.line(114, X, Y + 0.016, waterway="canal", bridge="yes", layer="1")
    # Dams and piers
    o.square(121, X, Y + 0.02, waterway="dam")
    o.line(122, X + 0.02, Y + 0.02, waterway="dam")
    o.square(123, X + 0.04, Y + 0.02, man_made="pier")
    o.line(124, X + 0.06, Y + 0.02, man_made="breakwater")
    # Boundaries: a country (2) and a state (4) sharing way 131
    a = o.node(X, Y + 0.03)
    b = o.node(X + 0.05, Y + 0.03)
    c = o.node(X + 0.05, Y + 0.035)
    o.way(131, [a, b])
    o.way(132, [b, c])
    o.way(133, [c, a])
    o.boundary(
        1,
        [131, 132, 133],
        "2",
        name="Testland",
        **{"name:en": "Testland EN", "ISO3166-1": "FR"},
    )
    o.boundary(
        2,
        [131],
        "4",
        name="Teststate",
    )
    # Places
    o.node(X, Y + 0.04, place="city", name="Mulhouse", population="108 312")
    o.node(X + 0.01, Y + 0.04, place="village", name="Capitale", capital="yes")
    o.node(X + 0.02, Y + 0.04, place="hamlet", name="Hameau")
    o.node(X + 0.03, Y + 0.04, place="town", name="Saint-Louis", **{"name:fr": "Saint-Louis FR"})
    # Land and sites
    o.square(141, X, Y + 0.05, landuse="forest")
    o.square(142, X + 0.01, Y + 0.05, natural="wood")
    o.square(143, X + 0.02, Y + 0.05, landuse="meadow")
    o.square(144, X + 0.03, Y + 0.05, landuse="cemetery")
    o.square(145, X + 0.04, Y + 0.05, landuse="residential")
    o.square(146, X + 0.05, Y + 0.05, amenity="school", name="École Jean Macé")
    o.square(147, X + 0.06, Y + 0.05, leisure="park")
    # Buildings and addresses
    o.square(151, X, Y + 0.06, building="yes")
    o.square(152, X + 0.01, Y + 0.06, building="no")
    o.node(X + 0.02, Y + 0.06, **{"addr:housenumber": "12", "addr:street": "Rue du Sauvage"})
    o.node(X + 0.03, Y + 0.06, amenity="cafe", name="Café", **{"addr:housenumber": "3"})
    # Streets
    o.line(161, X, Y + 0.07, highway="primary_link")
    o.line(162, X, Y + 0.072, railway="rail", service="yard")
    o.line(163, X, Y + 0.074, highway="residential", name="Rue de la Paix", oneway="-1")
    o.line(164, X, Y + 0.076, highway="motorway", ref="A 35;E 25", bridge="yes")
    o.line(165, X, Y + 0.078, highway="footway", tunnel="building_passage")
    o.line(166, X, Y + 0.08, railway="tram", name="Ligne 1")
    o.square(167, X + 0.02, Y + 0.07, highway="pedestrian", area="yes", name="Place de la Réunion")
    o.square(168, X + 0.04, Y + 0.07, highway="pedestrian")
    o.node(X + 0.06, Y + 0.07, highway="motorway_junction", ref="5", name="Mulhouse-Centre")
    o.square(169, X + 0.06, Y + 0.08, man_made="bridge")
    o.line(170, X, Y + 0.09, aerialway="rope_tow")
    o.line(171, X, Y + 0.092, route="ferry", name="Bac")
    o.line(172, X, Y + 0.094, route="ferry", motor_vehicle="no")
    # Public transport and POIs
    o.node(X, Y + 0.1, highway="bus_stop", name="Porte Jeune")
    o.node(X + 0.01, Y + 0.1, railway="station", name="Mulhouse-Ville")
    o.square(181, X + 0.02, Y + 0.1, aeroway="aerodrome", iata="MLH", name="EuroAirport")
    o.node(X + 0.03, Y + 0.1, amenity="place_of_worship", religion="christian", name="Temple")
    o.node(X + 0.04, Y + 0.1, amenity="recycling", **{"recycling:glass_bottles": "yes"})
    o.node(X + 0.05, Y + 0.1, shop="bakery", name="Boulangerie")
    o.node(X + 0.06, Y + 0.1, amenity="bank", atm="yes")
    o.node(X + 0.07, Y + 0.1, amenity="parking_space")
    # Communes: one closed ring, one with a member way missing from the extract
    o.square(191, X, Y + 0.2, size=0.05)
    o.boundary(
        3,
        [191],
        "8",
        name="Mulhouse",
        population="108312",
        **{"ref:INSEE": "68224", "name:de": "Mülhausen"},
    )
    o.line(192, X + 0.1, Y + 0.2, length=0.05)
    o.boundary(
        4,
        [192, 999999],
        "8",
        name="Riedisheim",
        **{"ref:INSEE": "68278"},
    )
    # Routing: a gate on a road, a gate elsewhere, a turn restriction
    gate = o.node(X + 0.2, Y + 0.2, barrier="gate")
    o.node(X + 0.3, Y + 0.3, barrier="gate")
    after = o.node(X + 0.21, Y + 0.2)
    o.way(201, [gate, after], highway="service", access="private")
    o.relation(
        5,
        [("w", 163, "from"), ("n", gate, "via"), ("w", 201, "to")],
        type="restriction",
        restriction="no_left_turn",
    )
    # A road with two nodes at one location (its line has one point fewer than nodes)
    first = o.node(X + 0.15, Y + 0.22)
    twin_a = o.node(X + 0.16, Y + 0.22)
    twin_b = o.node(X + 0.16, Y + 0.22)
    last = o.node(X + 0.17, Y + 0.23)
    o.way(202, [first, twin_a, twin_b, last], highway="track")
    return o


@pytest.fixture(scope="module")
def imported(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, ImportSummary]:
    path = _build().write(tmp_path_factory.mktemp("opl") / "cases.opl")
    url = make_database()
    return url, run_import(url, [path])


def rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def by_id(url: str, layer: str, osm_id: int, columns: str, osm_type: str = "w") -> tuple[Any, ...]:
    query = f"SELECT {columns} FROM osm.{layer} WHERE osm_id = %s"
    params: tuple[Any, ...] = (osm_id,)
    if layer in schema.LAYER_BY_NAME:
        query += " AND osm_type = %s"
        params = (osm_id, osm_type)
    found = rows(url, query, params)
    assert len(found) == 1, (layer, osm_id, found)
    return found[0]


def test_every_layer_table_has_the_contract_columns(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    for layer in schema.LAYERS:
        found = rows(
            url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'osm' AND table_name = %s ORDER BY ordinal_position",
            (layer.name,),
        )
        names = [r[0] for r in found]
        assert names == [*schema.SYSTEM_COLUMNS, *layer.column_names]
        srid = rows(url, "SELECT Find_SRID('osm', %s, 'geom')", (layer.name,))
        assert srid == [(3857,)]


def test_water(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "water_polygons", 101, "kind, minzoom") == ("water", 4)
    assert by_id(url, "water_polygons", 102, "kind") == ("river",)
    assert by_id(url, "water_polygons", 103, "kind") == ("river",)
    assert by_id(url, "water_polygons", 104, "kind") == ("glacier",)
    assert by_id(url, "water_polygons", 105, "kind") == ("reservoir",)
    assert by_id(url, "water_polygons", 106, "kind") == ("basin",)
    assert by_id(url, "water_polygons", 107, "kind, minzoom") == ("dock", 10)
    area = by_id(url, "water_polygons", 101, "way_area, ST_Area(geom)")
    assert area[0] == pytest.approx(area[1], rel=1e-3)
    label = by_id(
        url,
        "water_polygons_labels",
        101,
        "kind, name, name_de, GeometryType(geom), way_area > 0, sort_key < 0",
    )
    assert label == ("water", "Lac Vert", "Grüner See", "POINT", True, True)
    assert rows(url, "SELECT count(*) FROM osm.water_polygons_labels") == [(1,)]
    assert by_id(url, "water_lines", 111, "kind, minzoom") == ("river", 9)
    assert by_id(url, "water_lines", 112, "kind, minzoom, tunnel") == ("stream", 14, True)
    assert by_id(url, "water_lines", 113, "kind") == ("ditch",)
    assert by_id(url, "water_lines", 114, "kind, bridge, sort_key") == ("canal", True, 1.0)
    assert by_id(url, "water_lines_labels", 111, "name, minzoom") == ("Ill", 12)
    assert by_id(url, "water_lines_labels", 112, "kind, minzoom") == ("stream", 14)
    assert rows(url, "SELECT count(*) FROM osm.ocean") == [(0,)]


def test_dams_and_piers(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "dam_polygons", 121, "kind, minzoom") == ("dam", 12)
    assert by_id(url, "dam_lines", 122, "kind, minzoom") == ("dam", 12)
    assert by_id(url, "pier_polygons", 123, "kind") == ("pier",)
    assert by_id(url, "pier_lines", 124, "kind") == ("breakwater",)


def test_boundaries_and_labels(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "boundaries", 131, "admin_level, minzoom") == (2, 0)
    assert by_id(url, "boundaries", 132, "admin_level, minzoom") == (2, 0)
    assert by_id(
        url, "boundary_labels", 1, "admin_level, name, name_en, GeometryType(geom)", "r"
    ) == (
        2,
        "Testland",
        "Testland EN",
        "POINT",
    )
    level, way_area, minzoom = by_id(
        url, "boundary_labels", 1, "admin_level, way_area, minzoom", "r"
    )
    assert way_area > 0 and minzoom == 5


def test_places(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    found = {r[0]: r[1:] for r in rows(url, "SELECT name, kind, minzoom, population, sort_key "
                                           "FROM osm.place_labels")}  # fmt: skip
    assert found["Mulhouse"] == ("city", 6, 108312, -108312.0)
    assert found["Capitale"] == ("capital", 4, 100, -100.0)
    assert found["Hameau"] == ("hamlet", 10, 50, -50.0)
    assert found["Saint-Louis"][:2] == ("town", 7)
    assert rows(url, "SELECT name_fr FROM osm.place_labels WHERE name = 'Saint-Louis'") == [
        ("Saint-Louis FR",)
    ]


def test_land_sites_buildings_addresses(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "land", 141, "kind, minzoom") == ("forest", 7)
    assert by_id(url, "land", 142, "kind, minzoom") == ("forest", 7)
    assert by_id(url, "land", 143, "kind, minzoom") == ("meadow", 11)
    assert by_id(url, "land", 144, "kind, minzoom") == ("cemetery", 13)
    assert by_id(url, "land", 145, "kind, minzoom") == ("residential", 10)
    assert by_id(url, "land", 147, "kind") == ("park",)
    assert by_id(url, "sites", 146, "kind, minzoom, osm_type") == ("school", 14, "w")
    assert by_id(url, "pois", 146, "amenity, name, GeometryType(geom)") == (
        "school",
        "École Jean Macé",
        "POINT",
    )
    assert by_id(url, "buildings", 151, "dummy, minzoom, GeometryType(geom)") == (
        1,
        14,
        "MULTIPOLYGON",
    )
    assert rows(url, "SELECT count(*) FROM osm.buildings WHERE osm_id = 152") == [(0,)]
    assert rows(url, "SELECT housenumber FROM osm.addresses") == [("12",)]
    assert rows(url, "SELECT amenity, housenumber FROM osm.pois WHERE name = 'Café'") == [
        ("cafe", "3")
    ]


def test_streets(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "streets", 161, "kind, link, minzoom") == ("primary", True, 8)
    assert by_id(url, "streets", 162, "kind, rail, minzoom, oneway") == ("rail", True, 10, False)
    assert by_id(url, "streets", 163, "kind, oneway, oneway_reverse, minzoom") == (
        "residential",
        True,
        True,
        12,
    )
    assert by_id(url, "streets", 164, "kind, bridge, minzoom") == ("motorway", True, 5)
    assert by_id(url, "streets", 165, "kind, tunnel") == ("footway", True)
    # Tunnels sort before plain roads, plain roads before bridges.
    tunnel, plain, bridge = (
        by_id(url, "streets", i, "sort_key")[0] for i in (165, 163, 164)
    )  # fmt: skip
    assert tunnel < plain < bridge
    assert by_id(url, "street_labels", 163, "kind, name, minzoom") == (
        "residential",
        "Rue de la Paix",
        14,
    )
    assert by_id(url, "street_labels", 164, "kind, ref, ref_rows, ref_cols, minzoom") == (
        "motorway",
        "A 35\nE 25",
        2,
        4,
        10,
    )
    assert by_id(url, "street_labels", 166, "kind, minzoom") == ("tram", 10)
    assert by_id(url, "street_polygons", 167, "kind, minzoom") == ("pedestrian", 14)
    assert by_id(url, "streets_polygons_labels", 167, "name, GeometryType(geom)") == (
        "Place de la Réunion",
        "POINT",
    )
    # A closed pedestrian way without area=yes is a line (a pedestrian loop).
    assert by_id(url, "streets", 168, "kind") == ("pedestrian",)
    assert rows(url, "SELECT count(*) FROM osm.street_polygons WHERE osm_id = 168") == [(0,)]
    assert rows(url, "SELECT kind, ref, name, minzoom FROM osm.street_labels_points") == [
        ("motorway_junction", "5", "Mulhouse-Centre", 12)
    ]


def test_bridges_aerialways_ferries(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    assert by_id(url, "bridges", 169, "kind, minzoom") == ("bridge", 12)
    assert by_id(url, "aerialways", 170, "kind, minzoom") == ("rope-tow", 12)
    assert by_id(url, "ferries", 171, "kind, name, minzoom") == ("ferry", "Bac", 10)
    assert by_id(url, "ferries", 172, "minzoom") == (12,)


def test_public_transport_and_pois(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    found = {r[0]: r[1:] for r in rows(url, "SELECT name, kind, minzoom, iata "
                                           "FROM osm.public_transport")}  # fmt: skip
    assert found == {
        "Porte Jeune": ("bus_stop", 14, None),
        "Mulhouse-Ville": ("station", 13, None),
        "EuroAirport": ("aerodrome", 11, "MLH"),
    }
    assert rows(url, "SELECT religion FROM osm.pois WHERE name = 'Temple'") == [("christian",)]
    assert rows(
        url,
        'SELECT "recycling:glass_bottles", "recycling:paper" FROM osm.pois '
        "WHERE amenity = 'recycling'",
    ) == [(True, False)]
    assert rows(url, "SELECT shop FROM osm.pois WHERE name = 'Boulangerie'") == [("bakery",)]
    assert rows(url, "SELECT atm FROM osm.pois WHERE amenity = 'bank'") == [(True,)]
    assert rows(url, "SELECT count(*) FROM osm.pois WHERE amenity = 'parking_space'") == [(0,)]


def test_communes(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    found = rows(
        url,
        "SELECT osm_id, name, name_de, insee, country, population, complete, "
        "GeometryType(geom), admin_level FROM osm.communes ORDER BY osm_id",
    )
    assert found[0] == (3, "Mulhouse", "Mülhausen", "68224", "FR", 108312, True, "MULTIPOLYGON", 8)
    assert found[1][:2] == (4, "Riedisheim") and found[1][6] is False


def test_routing_tables(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    tags, nodes = by_id(url, "road_ways", 201, "tags, nodes")
    assert tags == {"highway": "service", "access": "private"}
    assert len(nodes) == 2
    located = rows(url, "SELECT count(*) FROM osm.road_nodes WHERE osm_id = ANY(%s)", (nodes,))
    assert located == [(2,)]
    assert rows(url, "SELECT osm_id, tags FROM osm.barriers") == [(nodes[0], {"barrier": "gate"})]
    members = by_id(url, "restrictions", 5, "members")[0]
    assert [m["role"] for m in members] == ["from", "via", "to"]
    assert members[1] == {"type": "n", "ref": nodes[0], "role": "via"}


def test_road_nodes_at_a_shared_location(
    imported: tuple[str, ImportSummary], tmp_path: Path
) -> None:
    url, _ = imported
    nodes = by_id(url, "road_ways", 202, "nodes")[0]
    expected = {}
    for node in osmium.FileProcessor(str(_build().write(tmp_path / "c.opl")), osmium.osm.NODE):
        if isinstance(node, osmium.osm.Node) and node.id in nodes:
            expected[node.id] = (node.location.lon, node.location.lat)
    located = rows(
        url, "SELECT osm_id, lon, lat FROM osm.road_nodes WHERE osm_id = ANY(%s)", (nodes,)
    )
    assert len(expected) == 4
    assert {osm_id: (lon, lat) for osm_id, lon, lat in located} == expected
    assert by_id(url, "road_ways", 202, "ST_NPoints(geom)")[0] == 3


def test_generalised_tables(imported: tuple[str, ImportSummary]) -> None:
    url, _ = imported
    for layer in schema.LAYERS:
        for zoom in layer.generalised:
            table = layer.table_for_zoom(zoom)
            assert table == f"{layer.name}_z{zoom}"
            high = rows(url, f"SELECT count(*) FROM osm.{table} WHERE minzoom > %s", (zoom,))
            assert high == [(0,)]
    # The motorway (z5) is in the z8 streets table, the residential road (z12) is not.
    kinds = {r[0] for r in rows(url, "SELECT kind FROM osm.streets_z8")}
    assert "motorway" in kinds and "residential" not in kinds


def test_meta(imported: tuple[str, ImportSummary]) -> None:
    url, summary = imported
    meta = dict(rows(url, "SELECT key, value FROM osm.meta"))
    assert meta["data_version"] == summary.data_version
    assert meta["sources"][0]["name"] == "cases.opl"
    # The map's extent: its buildings and roads (not boundaries, labels or outlying points).
    extent = rows(
        url,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform("
        "ST_SetSRID(ST_Extent(geom), 3857), 4326) AS e FROM (SELECT geom FROM osm.buildings "
        "UNION ALL SELECT geom FROM osm.streets UNION ALL SELECT geom FROM osm.road_ways) g) t",
    )[0]
    assert meta["bbox"] == pytest.approx(list(extent), abs=1e-6)
    west, south, east, north = meta["bbox"]
    assert X <= west < east <= X + 0.21 and Y <= south < north <= Y + 0.25
    lon, lat = meta["center"]
    assert west <= lon <= east and south <= lat <= north
    assert meta["counts"]["buildings"] == 1
    indexes = rows(
        url,
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'osm'",
    )
    for layer in schema.LAYERS:
        defs = [d for t, d in indexes if t == layer.name]
        assert any("gist" in d for d in defs), layer.name
        assert any("(osm_type, osm_id)" in d for d in defs), layer.name


def test_pure_rules_on_plain_dicts() -> None:
    from osmimport import mapping

    assert [f.layer for f in mapping.node_features({"amenity": "pharmacy"})] == ["pois"]
    assert mapping.line_features({"highway": "pedestrian", "area": "yes"}, closed=True) == []
    assert mapping.area_features({"building": "no"}, from_way=True) == []
    streets = mapping.line_features({"highway": "trunk_link"}, closed=False)
    assert streets[0].attrs["kind"] == "trunk" and streets[0].attrs["link"] is True


def test_filter_keys_cover_every_rule(tmp_path: Path) -> None:
    # Nodes and ways without these keys never reach Python: every object a rule (or routing)
    # uses must have one, in the sample extract and in the inline cases.
    from osmimport import loader, mapping

    sources = [LIECHTENSTEIN, _build().write(tmp_path / "cases.opl")]
    used_nodes = used_ways = 0
    for source in sources:
        for obj in osmium.FileProcessor(str(source), osmium.osm.NODE | osmium.osm.WAY):
            tags = {tag.k: tag.v for tag in obj.tags}
            if isinstance(obj, osmium.osm.Node):
                if mapping.node_features(tags) or not loader.BARRIER_KEYS.isdisjoint(tags):
                    used_nodes += 1
                    assert not loader.NODE_KEYS.isdisjoint(tags), tags
            elif isinstance(obj, osmium.osm.Way):
                features = mapping.line_features(tags, closed=obj.is_closed())
                if features or "highway" in tags or tags.get("route") == "ferry":
                    used_ways += 1
                    assert not mapping.LINE_KEYS.isdisjoint(tags), tags
    assert used_nodes > 1000 and used_ways > 1000


def test_conflicting_tags_map_the_same_in_every_process() -> None:
    # Which key wins must not depend on Python's per-process string hashing.
    import subprocess
    import sys

    probe = (
        "from osmimport import mapping; "
        "print([f.attrs.get('kind') for f in mapping.area_features("
        "{'landuse': 'plant_nursery', 'natural': 'scrub', 'amenity': 'grave_yard'}, "
        "from_way=True) if f.layer == 'land'])"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", probe],
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in range(8)
    }
    assert seen == {"['plant_nursery']"}

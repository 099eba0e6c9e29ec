"""Real-world extracts: bbox cuts, unsorted exports, empty results, merged duplicates, bounds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import osmium
import pytest

from osmimport import loader, schema
from osmimport.errors import OsmImportError
from osmimport.importer import INCOMPLETE_RESTRICTIONS, run_import
from osmimport.inputs import OLDER_VERSIONS
from tests.osmimport.db import cli, query, scalar
from tests.osmimport.opl import Opl

ROOT = Path(__file__).resolve().parents[2]
LIECHTENSTEIN = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
MULHOUSE_CENTRE = ROOT / "data" / "sample" / "mulhouse-centre.osm.pbf"
#: A box in Liechtenstein's middle (Vaduz, Triesen): every edge cuts roads and buildings.
CUT_BOX = "9.50,47.10,9.55,47.15"


def osmium_tool(*args: str) -> str:
    return subprocess.run(["osmium", *args], check=True, capture_output=True, text=True).stdout


def osmium_way_count(path: Path, expression: str) -> int:
    """Ways matching ``expression`` (osmium tags-filter syntax), counted by osmium fileinfo."""
    target = path.with_name(f"{path.stem}-{expression.replace('/', '-')}.osm.pbf")
    osmium_tool("tags-filter", "-O", "-R", str(path), expression, "-o", str(target))
    return int(osmium_tool("fileinfo", "--extended", "--get", "data.count.ways", str(target)))


def osmium_building_polygons(path: Path) -> int:
    """Buildings osmium itself can make a polygon of (``osmium export``)."""
    filtered = path.with_name(f"{path.stem}-buildings.osm.pbf")
    osmium_tool("tags-filter", "-O", str(path), "a/building", "-o", str(filtered))
    exported = path.with_name(f"{path.stem}-buildings.geojsonseq")
    osmium_tool("export", "-O", str(filtered), "-f", "geojsonseq", "-o", str(exported))
    count = 0
    for line in exported.read_text(encoding="utf-8").split("\x1e"):
        if not line.strip():
            continue
        feature = json.loads(line)
        if feature["geometry"]["type"] in ("Polygon", "MultiPolygon"):
            count += feature["properties"].get("building", "no") != "no"
    return count


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FONDPLAN_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Liechtenstein cut by a box as osmconvert cuts: ways keep every node id, nodes outside go.

    (``osmium extract --strategy simple`` also trims the ids outside the box off each end.)
    """
    folder = tmp_path_factory.mktemp("cut")
    complete = folder / "complete.osm.pbf"
    osmium_tool(
        "extract", "--strategy", "complete_ways", "-b", CUT_BOX, "-o", str(complete),
        str(LIECHTENSTEIN),
    )  # fmt: skip
    west, south, east, north = (float(v) for v in CUT_BOX.split(","))
    outside = [
        f"n{node.id}"
        for node in osmium.FileProcessor(str(complete), osmium.osm.NODE)
        if not (west <= node.location.lon <= east and south <= node.location.lat <= north)
    ]
    ids = folder / "outside.txt"
    ids.write_text("\n".join(outside) + "\n", encoding="utf-8")
    target = folder / "cut.osm.pbf"
    osmium_tool("removeid", "-i", str(ids), str(complete), "-o", str(target))
    return target


@pytest.fixture(scope="module")
def cut_import(cut: Path, make_database: Callable[[], str]) -> tuple[str, dict[str, int]]:
    url = make_database()
    summary = run_import(url, [cut])
    return url, summary.warnings


def test_cut_extract_keeps_what_can_be_drawn(
    cut: Path, cut_import: tuple[str, dict[str, int]]
) -> None:
    url, warnings = cut_import
    assert warnings[loader.CUT_ROADS] > 0 and warnings[loader.LOST_BUILDINGS] > 0
    # Every highway way of the cut is a road way, unless fewer than two of its nodes are in it.
    roads = scalar(url, "SELECT count(DISTINCT osm_id) FROM osm.road_ways")
    assert roads + warnings[loader.LOST_ROADS] == osmium_way_count(cut, "w/highway")
    # Every building polygon osmium can make is there, and only those.
    assert scalar(url, "SELECT count(*) FROM osm.buildings") == osmium_building_polygons(cut)

    # Roads whose FIRST node is outside the box keep the run of nodes inside it.
    present = {node.id for node in osmium.FileProcessor(str(cut), osmium.osm.NODE)}
    first_missing: dict[int, list[int]] = {}
    for way in osmium.FileProcessor(str(cut), osmium.osm.WAY):
        refs = [n.ref for n in way.nodes]
        if "highway" in way.tags and refs[0] not in present:
            runs: list[list[int]] = [[]]
            for ref in refs:
                if ref in present:
                    runs[-1].append(ref)
                elif runs[-1]:
                    runs.append([])
            longest = max(runs, key=len)
            if len(longest) >= 2:
                first_missing[way.id] = longest
    assert len(first_missing) >= 3
    stored = dict(
        query(url, "SELECT osm_id, nodes FROM osm.road_ways WHERE osm_id = ANY(%s)",
              (list(first_missing),))
    )  # fmt: skip
    assert stored == first_missing
    # Their lines are drawn too, inside the box.
    lines = query(
        url,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
        "ST_Transform(ST_SetSRID(ST_Extent(geom), 3857), 4326) AS e FROM osm.streets "
        "WHERE osm_id = ANY(%s)) t",
        (list(first_missing),),
    )[0]
    west, south, east, north = (float(v) for v in CUT_BOX.split(","))
    assert west - 1e-6 <= lines[0] and lines[2] <= east + 1e-6
    assert south - 1e-6 <= lines[1] and lines[3] <= north + 1e-6


def test_cut_mulhouse_through_the_cli(tmp_path: Path, make_database: Callable[[], str]) -> None:
    cut = tmp_path / "mulhouse-cut.osm.pbf"
    osmium_tool(
        "extract", "--strategy", "simple", "-b", "7.333,47.745,7.340,47.752", "-o", str(cut),
        str(MULHOUSE_CENTRE),
    )  # fmt: skip
    url = make_database()
    result = cli(url, "import", "--quiet", str(cut))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert loader.CUT_ROADS in result.stdout
    assert scalar(url, "SELECT count(*) FROM osm.buildings") == osmium_building_polygons(cut)


def test_missing_first_nodes_and_members_in_opl(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    opl = Opl()
    for i in range(1, 9):
        opl.node(7.30 + i * 0.001, 47.70, node_id=i)
    # n100 and n101 are not in the file.
    opl.way(1, [100, 1, 2, 3], highway="residential", name="Rue Coupée")
    opl.way(2, [1, 2, 101, 4, 5, 6], highway="service", name="Deux Bouts")
    opl.way(3, [100, 7], highway="footway")
    opl.way(4, [100, 101], waterway="stream")
    opl.way(5, [4, 5, 100, 4], building="yes")
    opl.way(6, [6, 7, 8, 101, 6])
    opl.relation(1, [("w", 6, "outer"), ("w", 999, "outer")], type="multipolygon", landuse="grass")
    opl.relation(
        2,
        [("w", 1, "from"), ("n", 3, "via"), ("w", 998, "to")],
        type="restriction",
        restriction="no_left_turn",
    )
    path = opl.write(tmp_path / "cut.opl")
    url = make_database()
    summary = run_import(url, [path])
    warnings = summary.warnings
    assert warnings[loader.CUT_ROADS] == 2
    assert warnings[loader.LOST_ROADS] == 1 and warnings[loader.LOST_WAYS] == 1
    assert warnings[loader.LOST_BUILDINGS] == 1
    assert warnings["multipolygon or boundary relations that could not be assembled"] == 1
    assert warnings[INCOMPLETE_RESTRICTIONS] == 1
    assert dict(query(url, "SELECT osm_id, nodes FROM osm.road_ways")) == {
        1: [1, 2, 3],
        2: [4, 5, 6],  # the longer of its two runs is the one routed on
    }
    # Both runs of way 2 are drawn.
    parts = query(url, "SELECT ST_NPoints(geom) FROM osm.streets WHERE osm_id = 2 ORDER BY 1")
    assert parts == [(2,), (3,)]
    assert scalar(url, "SELECT count(*) FROM osm.buildings") == 0


def _write_unsorted(source: Path, target: Path) -> Path:
    """The file written as an Overpass export is: relations, then ways, then nodes."""
    writer = osmium.SimpleWriter(str(target), overwrite=True)
    try:
        for obj in osmium.FileProcessor(str(source), osmium.osm.RELATION):
            writer.add_relation(obj)
        for obj in osmium.FileProcessor(str(source), osmium.osm.WAY):
            writer.add_way(obj)
        for obj in osmium.FileProcessor(str(source), osmium.osm.NODE):
            writer.add_node(obj)
    finally:
        writer.close()
    return target


def test_unsorted_export_is_sorted_first(tmp_path: Path, make_database: Callable[[], str]) -> None:
    unsorted = _write_unsorted(MULHOUSE_CENTRE, tmp_path / "overpass.osm")
    assert unsorted.read_text(encoding="utf-8").splitlines()[2].lstrip().startswith("<relation")
    sorted_url, unsorted_url = make_database(), make_database()
    expected = run_import(sorted_url, [MULHOUSE_CENTRE]).counts
    result = cli(unsorted_url, "import", str(unsorted))
    assert result.returncode == 0, result.stderr
    assert "sorting overpass.osm" in result.stderr
    counts = json.loads(
        scalar(unsorted_url, "SELECT value::text FROM osm.meta WHERE key = 'counts'")
    )
    assert counts == expected and counts["road_ways"] > 100


def test_unsorted_input_without_osmium_tool_is_refused(
    tmp_path: Path, make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unsorted = _write_unsorted(MULHOUSE_CENTRE, tmp_path / "overpass.osm")
    url = make_database()
    run_import(url, [MULHOUSE_CENTRE])
    version = scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'")
    # No osmium-tool on the PATH: the loader finds the disorder itself.
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(OsmImportError) as caught:
        run_import(url, [unsorted])
    message = str(caught.value)
    assert "not sorted" in message and f"osmium sort {unsorted}" in message
    assert "\n" not in message
    assert scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'") == version


def test_empty_results_do_not_replace_the_data(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    url = make_database()
    run_import(url, [MULHOUSE_CENTRE])
    version = scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'")
    empty = tmp_path / "empty.osm"
    empty.write_text('<osm version="0.6"></osm>\n', encoding="utf-8")
    result = cli(url, "import", "--quiet", str(empty))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {empty}: found 0 map features and 0 road ways: nothing to serve; the data "
        "served is unchanged (pass --allow-empty to replace it anyway)"
    ]
    # Buildings but no road where the served data has roads.
    no_roads = tmp_path / "no-roads.osm.pbf"
    osmium_tool("tags-filter", "-O", str(MULHOUSE_CENTRE), "a/building", "-o", str(no_roads))
    result = cli(url, "import", "--quiet", str(no_roads))
    assert result.returncode == 1
    served_roads = scalar(url, "SELECT count(*) FROM osm.road_ways")
    assert f"no road network, where the data served has {served_roads:,} road ways" in (
        result.stderr
    )
    assert scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'") == version
    assert scalar(url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'osm_%%'") == 0
    # --allow-empty replaces it.
    result = cli(url, "import", "--quiet", "--allow-empty", str(no_roads))
    assert result.returncode == 0, result.stderr
    assert scalar(url, "SELECT count(*) FROM osm.road_ways") == 0
    assert scalar(url, "SELECT count(*) FROM osm.buildings") > 1000


def test_duplicates_across_extracts_of_different_days(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    # The same street in two extracts, one day apart: version 1 and version 2 (renamed).
    older, newer = Opl(), Opl()
    for opl, version, name in ((older, 1, "Rue Ancienne"), (newer, 2, "Rue Nouvelle")):
        a = opl.node(7.30, 47.70, node_id=1)
        b = opl.node(7.31, 47.70, node_id=2)
        c = opl.node(7.32, 47.70, node_id=3)
        opl.way(10, [a, b, c], highway="residential", name=name)
        opl.ways[10] = opl.ways[10].replace(" v1 ", f" v{version} ")
        opl.square(20, 7.30, 47.71, building="yes")
    left = older.write(tmp_path / "left.opl")
    right = newer.write(tmp_path / "right.opl")
    url = make_database()
    summary = run_import(url, [left, right])
    assert summary.warnings == {OLDER_VERSIONS: 1}
    assert scalar(url, "SELECT count(*) FROM osm.road_ways") == 1
    assert query(url, "SELECT name FROM osm.street_labels") == [("Rue Nouvelle",)]
    assert scalar(url, "SELECT count(*) FROM osm.buildings") == 1


def test_node_ids_above_ten_billion(tmp_path: Path, make_database: Callable[[], str]) -> None:
    # Real OSM node ids pass 10^10 soon: the on-disk location index takes any 64-bit id.
    opl = Opl()
    base = 12_000_000_000
    ids = [opl.node(7.30 + i * 0.001, 47.70 + i * 0.0005, node_id=base + i) for i in range(4)]
    opl.node(7.35, 47.75, node_id=3, amenity="pharmacy", name="Pharmacie")
    opl.way(2_000_000_001, ids, highway="residential", name="Rue Lointaine")
    url = make_database()
    # The import works beside its node files; what a killed import left there goes.
    node_dir = tmp_path / "nodes"
    (node_dir / "fondplan-import-killed").mkdir(parents=True)
    (node_dir / "fondplan-import-killed" / "merged.osm.pbf").write_bytes(b"x")
    run_import(url, [opl.write(tmp_path / "high.opl")], node_dir=node_dir)
    assert [p.name for p in node_dir.iterdir()] == [
        scalar(url, "SELECT value FROM osm.meta WHERE key = %s", (schema.NODE_STORE_KEY,))
    ]
    assert query(url, "SELECT osm_id, lon, lat FROM osm.road_nodes ORDER BY osm_id") == [
        (base + i, pytest.approx(7.30 + i * 0.001), pytest.approx(47.70 + i * 0.0005))
        for i in range(4)
    ]
    points = scalar(url, "SELECT ST_NPoints(geom) FROM osm.streets WHERE osm_id = 2000000001")
    assert points == 4

"""Whole-extract imports: counts against pyosmium, formats, merging, bad input, a killed import."""

from __future__ import annotations

import bz2
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import osmium
import osmium.index
import psycopg2
import pytest
from psycopg2 import sql

from osmimport import loader, schema
from osmimport.cli import main as cli_main
from osmimport.errors import OsmImportError
from osmimport.importer import node_store_dir, run_import
from tests.osmimport.db import cli as _cli
from tests.osmimport.db import query, scalar

ROOT = Path(__file__).resolve().parents[2]
LIECHTENSTEIN = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"
LI_2013_PBF = ROOT / "tests" / "data" / "liechtenstein-2013-08-03.osm.pbf"
LI_2013_BZ2 = ROOT / "tests" / "data" / "liechtenstein-2013-08-03.osm.bz2"
MULHOUSE_XML = ROOT / "tests" / "data" / "mulhouse-sud-ouest.osm.bz2"
MULHOUSE_CENTRE = ROOT / "data" / "sample" / "mulhouse-centre.osm.pbf"
MULHOUSE_SW = ROOT / "data" / "sample" / "mulhouse-sud-ouest.osm.pbf"

#: Highway values the Shortbread spec lists for street labels.
LABELLED_HIGHWAYS = {
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential",
    "living_street", "busway", "bus_guideway", "service", "pedestrian", "track", "footway",
    "steps", "path", "cycleway",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI imports keep their node locations under the data dir: a throwaway one here."""
    monkeypatch.setenv("FONDPLAN_DATA_DIR", str(tmp_path / "data"))


def table_digest(url: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent digest of every column of a table."""
    return query(
        url,
        f"SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
        f"FROM osm.{table} t",
    )[0]


@pytest.fixture(scope="module")
def pyosmium_counts() -> dict[str, Any]:
    """Independent counts from the source file."""
    buildings = 0
    street_names: set[str] = set()
    communes: dict[int, str] = {}
    for obj in osmium.FileProcessor(str(LIECHTENSTEIN)).with_areas():
        tags = obj.tags
        if obj.is_area():
            if tags.get("building", "no") != "no":
                buildings += 1
            if (
                not obj.from_way()
                and tags.get("boundary") == "administrative"
                and tags.get("admin_level") == "8"
            ):
                communes[obj.orig_id()] = tags.get("name", "")
        elif obj.is_way():
            # Ways with area=yes are street areas, labelled in streets_polygons_labels.
            if (
                tags.get("highway") in LABELLED_HIGHWAYS
                and "name" in tags
                and tags.get("area") != "yes"
            ):
                street_names.add(tags["name"])
    return {"buildings": buildings, "street_names": street_names, "communes": communes}


def test_liechtenstein_counts(liechtenstein_url: str, pyosmium_counts: dict[str, Any]) -> None:
    url = liechtenstein_url
    assert scalar(url, "SELECT count(*) FROM osm.buildings") == pyosmium_counts["buildings"]
    assert pyosmium_counts["buildings"] > 10_000
    names = {
        r[0]
        for r in query(
            url,
            "SELECT DISTINCT name FROM osm.street_labels WHERE name IS NOT NULL AND kind = ANY(%s)",
            (sorted(LABELLED_HIGHWAYS),),
        )
    }
    assert names == pyosmium_counts["street_names"]
    assert len(names) > 900
    complete = dict(query(url, "SELECT osm_id, name FROM osm.communes WHERE complete AND commune"))
    assert complete == pyosmium_counts["communes"]
    assert len(complete) == 11 and all(complete.values())
    assert "Vaduz" in complete.values()
    countries = query(url, "SELECT country FROM osm.communes WHERE complete AND commune")
    assert {r[0] for r in countries} == {"LI"}


def test_liechtenstein_meta_and_info(
    liechtenstein_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = dict(query(liechtenstein_url, "SELECT key, value FROM osm.meta"))
    assert meta["sources"] == [
        {
            "name": LIECHTENSTEIN.name,
            "size": LIECHTENSTEIN.stat().st_size,
            "timestamp": "2021-05-05T20:21:43Z",
        }
    ]
    west, south, east, north = meta["bbox"]
    assert 9.2 < west < 9.5 < east < 9.8 and 46.9 < south < 47.1 < north < 47.6
    for table, count in meta["counts"].items():
        assert scalar(liechtenstein_url, f"SELECT count(*) FROM osm.{table}") == count
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert meta["data_version"] in out
    assert "liechtenstein-2021-05-05.osm.pbf" in out
    assert f"{meta['counts']['buildings']:,}" in out


#: Per z14 tile of a table's rows: the rows it reads and the heap pages they lie on, with the
#: fewest pages those rows could fill.
TILE_PAGES = """
WITH tiles AS (
    SELECT DISTINCT ST_TileEnvelope(14,
        floor((ST_X(c) + 20037508.34) / (40075016.68 / 16384))::int,
        floor((20037508.34 - ST_Y(c)) / (40075016.68 / 16384))::int) AS env
    FROM (SELECT ST_Centroid(geom) AS c FROM osm.{table}) s
), per_tile AS (
    SELECT count(*) AS n, count(DISTINCT (g.ctid::text::point)[0]) AS pages
    FROM tiles JOIN osm.{table} g ON g.geom && tiles.env GROUP BY tiles.env
), density AS (
    SELECT reltuples / relpages AS per_page FROM pg_class WHERE oid = 'osm.{table}'::regclass
)
SELECT sum(pages), sum(ceil(n / per_page)) FROM per_tile, density
"""


@pytest.mark.parametrize("table", ["buildings", "streets", "land", "land_z13"])
def test_layer_rows_are_stored_in_spatial_order(liechtenstein_url: str, table: str) -> None:
    """The rows of a tile lie on few more heap pages than they could fill (1.5-2.5 times; in
    OSM id order 3-7 times as many, pages a tile of a large region reads from disk)."""
    pages, least = query(liechtenstein_url, TILE_PAGES.format(table=table))[0]
    assert least > 10
    assert pages <= 2.75 * least, (pages, least)


def test_info_says_when_nothing_is_loaded(
    make_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", make_database())
    assert cli_main(["info"]) == 0
    assert "nothing loaded" in capsys.readouterr().out


def test_pbf_and_bz2_give_the_same_tables(make_database: Callable[[], str]) -> None:
    from_pbf, from_bz2 = make_database(), make_database()
    run_import(from_pbf, [LI_2013_PBF])
    run_import(from_bz2, [LI_2013_BZ2])
    tables = [layer.name for layer in schema.LAYERS] + [
        schema.ROAD_WAYS_TABLE,
        schema.ROAD_NODES_TABLE,
        schema.BARRIERS_TABLE,
        schema.RESTRICTIONS_TABLE,
        schema.COMMUNES_TABLE,
    ]
    assert scalar(from_pbf, "SELECT count(*) FROM osm.buildings") > 1000
    for table in tables:
        assert table_digest(from_pbf, table) == table_digest(from_bz2, table), table


def test_mulhouse_xml_imports(make_database: Callable[[], str]) -> None:
    url = make_database()
    summary = run_import(url, [MULHOUSE_XML])
    assert summary.counts["streets"] > 100
    ways = 0
    with bz2.open(MULHOUSE_XML, "rb") as stream:
        for line in stream:
            if b'k="highway"' in line:
                ways += 1
    assert ways > 0
    assert scalar(url, "SELECT count(*) FROM osm.road_ways") > 0
    insee = {r[0] for r in query(url, "SELECT insee FROM osm.communes WHERE insee IS NOT NULL")}
    assert all(code.startswith("68") for code in insee)


def test_overlapping_files_give_no_duplicates(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    # Two extracts of Liechtenstein that share a 2 km strip, cut with osmium-tool.
    west, east = tmp_path / "west.osm.pbf", tmp_path / "east.osm.pbf"
    for target, box in ((west, "9.40,47.0,9.56,47.3"), (east, "9.53,47.0,9.70,47.3")):
        subprocess.run(
            ["osmium", "extract", "--bbox", box, "--strategy", "complete_ways", "-o",
             str(target), str(LIECHTENSTEIN)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    both, one, two = make_database(), make_database(), make_database()
    run_import(both, [west, east])
    run_import(one, [west])
    run_import(two, [east])
    for table in [layer.name for layer in schema.LAYERS]:
        dupes = scalar(
            both,
            f"SELECT count(*) FROM (SELECT osm_type, osm_id, geom FROM osm.{table} "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
        )
        assert dupes == 0, table
    ids = query(both, "SELECT osm_id FROM osm.road_ways")
    first, second = (
        set(query(one, "SELECT osm_id FROM osm.road_ways")),
        set(query(two, "SELECT osm_id FROM osm.road_ways")),
    )
    assert first & second, "the two extracts overlap"
    assert len(ids) == len(set(ids)) == len(first | second)
    buildings = {r[0] for r in query(both, "SELECT osm_id FROM osm.buildings")}
    assert buildings == {
        r[0] for url in (one, two) for r in query(url, "SELECT osm_id FROM osm.buildings")
    }


@pytest.fixture
def loaded_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    run_import(url, [LI_2013_PBF])
    return url


def _snapshot(url: str) -> tuple[Any, ...]:
    return (
        scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'"),
        table_digest(url, "buildings"),
        table_digest(url, "streets"),
    )


def test_bad_input_exits_1_and_keeps_the_data(loaded_url: str, tmp_path: Path) -> None:
    before = _snapshot(loaded_url)
    data = LI_2013_PBF.read_bytes()
    empty = tmp_path / "empty.osm.pbf"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.osm.pbf"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.osm.pbf"
    corrupt.write_bytes(data[:5000] + bytes(255 - b for b in data[5000:20000]) + data[20000:])
    wrong = tmp_path / "notes.txt"
    wrong.write_text("not OSM\n")
    xml_as_pbf = tmp_path / "xml.osm.pbf"
    xml_as_pbf.write_text("<?xml version='1.0'?><osm version='0.6'></osm>\n")
    broken_xml = tmp_path / "broken.osm"
    broken_xml.write_text("<?xml version='1.0'?><osm version='0.6'><node id='1' lat=")
    cases = {
        tmp_path / "missing.osm.pbf": "no such file",
        empty: "empty file",
        truncated: str(truncated),
        corrupt: str(corrupt),
        wrong: "unknown format",
        xml_as_pbf: "not PBF",
        broken_xml: str(broken_xml),
    }
    for path, message in cases.items():
        result = _cli(loaded_url, "import", "--quiet", str(path))
        assert result.returncode == 1, (path, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), result.stderr
        assert message in last and path.name in last, last
        assert "Traceback" not in result.stderr
        assert _snapshot(loaded_url) == before
    # A bad file next to a good one: nothing is imported either.
    result = _cli(loaded_url, "import", "--quiet", str(LI_2013_PBF), str(truncated))
    assert result.returncode == 1 and "truncated.osm.pbf" in result.stderr
    assert _snapshot(loaded_url) == before


def test_broken_objects_are_skipped_with_warnings(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    opl = tmp_path / "broken.opl"
    opl.write_text(
        "n1 v1 x7.30 y47.70 T\n"
        "n2 v1 x7.31 y47.70 T\n"
        "n3 v1 x7.31 y47.71 T\n"
        "n4 v1 x7.30 y47.71 T\n"
        "w1 v1 Thighway=residential,name=Rue%20%A Nn1,n2\n"
        "w2 v1 Thighway=residential,name=Rue%20%B Nn2,n99\n"
        "w3 v1 T Nn1,n2,n3\n"
        "r1 v1 Ttype=multipolygon,natural=water Mw3@outer\n"
    )
    url = make_database()
    summary = run_import(url, [opl])
    assert summary.warnings[loader.LOST_ROADS] == 1
    assert summary.warnings["multipolygon or boundary relations that could not be assembled"] == 1
    assert scalar(url, "SELECT array_agg(name) FROM osm.street_labels") == ["Rue A"]
    assert scalar(url, "SELECT count(*) FROM osm.water_polygons") == 0
    meta = scalar(url, "SELECT value FROM osm.meta WHERE key = 'warnings'")
    assert sum(meta.values()) == summary.warning_count == 2


def test_cli_import_prints_a_summary(make_database: Callable[[], str]) -> None:
    url = make_database()
    result = _cli(url, "import", str(MULHOUSE_SW))
    assert result.returncode == 0, result.stderr
    assert "objects/s" in result.stderr
    version = scalar(url, "SELECT value FROM osm.meta WHERE key = 'data_version'")
    assert version in result.stdout
    buildings = scalar(url, "SELECT count(*) FROM osm.buildings")
    assert any(
        line.split() == ["buildings", f"{buildings:,}"] for line in result.stdout.splitlines()
    )
    assert "peak memory" in result.stdout and "warnings:" in result.stdout


def test_node_locations_are_kept_for_updates(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    data_dir = tmp_path / "data"
    result = _cli(url, "import", "--quiet", str(MULHOUSE_SW))
    assert result.returncode == 0, result.stderr
    node_dir = node_store_dir(data_dir, url)
    name = scalar(url, "SELECT value FROM osm.meta WHERE key = %s", (schema.NODE_STORE_KEY,))
    assert [p.name for p in node_dir.iterdir()] == [name]
    expected = {
        node.id: (node.location.x, node.location.y)
        for node in osmium.FileProcessor(str(MULHOUSE_SW), osmium.osm.NODE)
    }
    # One record per node of the extract, tagged or not, and nothing else.
    assert (node_dir / name).stat().st_size == 16 * len(expected)
    store = osmium.index.create_map(f"sparse_file_array,{node_dir / name}")
    for node_id in list(expected)[:: max(1, len(expected) // 500)]:
        location = store.get(node_id)
        assert (location.x, location.y) == expected[node_id]
    with pytest.raises(KeyError):
        store.get(max(expected) + 1)
    del store

    # The next import replaces the file together with the data; a failed one leaves both.
    result = _cli(url, "import", "--quiet", str(MULHOUSE_CENTRE))
    assert result.returncode == 0, result.stderr
    newer = scalar(url, "SELECT value FROM osm.meta WHERE key = %s", (schema.NODE_STORE_KEY,))
    assert newer != name and [p.name for p in node_dir.iterdir()] == [newer]
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(MULHOUSE_SW.read_bytes()[:5000])
    result = _cli(url, "import", "--quiet", str(broken))
    assert result.returncode == 1
    assert [p.name for p in node_dir.iterdir()] == [newer]


def test_hooks_and_notify_after_swap(make_database: Callable[[], str]) -> None:
    url = make_database()
    listener = psycopg2.connect(url)
    listener.autocommit = True
    listener.cursor().execute("LISTEN fondplan_data_version")
    seen: list[str] = []

    def hook(hook_url: str) -> None:
        seen.append(scalar(hook_url, "SELECT value FROM osm.meta WHERE key = 'data_version'"))

    summary = run_import(url, [MULHOUSE_SW], after_import=[hook])
    assert seen == [summary.data_version]
    listener.poll()
    assert [n.payload for n in listener.notifies] == [summary.data_version]
    listener.close()
    assert scalar(url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'osm_%%'") == 0


def note_staged_network(url: str, staging: str, version: str, keep: Path | None) -> None:
    """A before-swap hook: writes down, beside the staged data, what it saw and where it ran."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} AS SELECT %s::text AS version, %s::int AS pid, "
                    "(SELECT count(*) FROM {}) AS roads"
                ).format(
                    sql.Identifier(staging, "hook_saw"),
                    sql.Identifier(staging, schema.ROAD_WAYS_TABLE),
                ),
                (version, os.getpid()),
            )
    finally:
        conn.close()


def failing_hook(url: str, staging: str, version: str, keep: Path | None) -> None:
    """A before-swap hook that fails."""
    raise OsmImportError(f"the hook failed on {version}")


def test_before_swap_hooks_run_in_a_child_on_the_built_network(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    summary = run_import(url, [MULHOUSE_SW], before_swap=[note_staged_network])
    version, pid, roads = query(url, "SELECT version, pid, roads FROM osm.hook_saw")[0]
    assert version == summary.data_version
    assert pid != os.getpid()
    assert roads == summary.counts[schema.ROAD_WAYS_TABLE] > 0


def test_a_failing_hook_leaves_the_data(loaded_url: str) -> None:
    before = _snapshot(loaded_url)
    with pytest.raises(OsmImportError, match="the hook failed on"):
        run_import(loaded_url, [LI_2013_PBF], before_swap=[failing_hook])
    assert _snapshot(loaded_url) == before


def test_sigkill_mid_import_leaves_the_data(loaded_url: str) -> None:
    before = _snapshot(loaded_url)
    env = {**os.environ, "FONDPLAN_DATABASE_URL": loaded_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "osmimport.cli", "import", str(LIECHTENSTEIN)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait until the new import is writing its staging tables, then kill it.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            rows = scalar(
                loaded_url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'COPY%%'",
            )
            if rows:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the import finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert _snapshot(loaded_url) == before
    summary = run_import(loaded_url, [LI_2013_BZ2])
    assert _snapshot(loaded_url)[0] == summary.data_version != before[0]
    assert scalar(loaded_url, "SELECT count(*) FROM osm.buildings") == before[1][0]

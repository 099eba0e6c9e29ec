"""The ways an import keeps for updates: read by osmium-tool, as pyosmium reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import osmium
import psycopg2

from osmimport.importer import run_import
from osmimport.inputs import osmium_tool
from osmimport.middleways import opl_lines, pyosmium_lines
from osmimport.update import run_update

from .db import query
from .opl import Opl

ROOT = Path(__file__).resolve().parents[2]
WEHR = ROOT / "tests" / "data" / "wehr-baden.osm.pbf"

#: Tags with every character OPL escapes: separators, spaces, percent signs, control
#: characters, letters beyond U+05FF.
ODD_TAGS = {
    "name": "Rue de l'Église, 3 = trois % \\ fin",
    "name:ja": "東京駅 🚉",
    "note": "deux\nlignes\tet tab",
    "a b=c,d": "@x",
}


def _ways(path: Path) -> dict[int, tuple[list[int], dict[str, str]]]:
    """Every way of ``path`` as pyosmium reads it: (node ids, tags)."""
    ways = {}
    for way in osmium.FileProcessor(str(path), osmium.osm.WAY):
        if isinstance(way, osmium.osm.Way) and way.id not in ways:
            ways[way.id] = ([n.ref for n in way.nodes], {t.k: t.v for t in way.tags})
    return ways


def _odd_file(folder: Path) -> Path:
    opl = Opl()
    a, b = opl.node(7.5, 47.7), opl.node(7.6, 47.7)
    opl.way(1, [a, b], highway="residential", **ODD_TAGS)
    opl.way(2, [b, a])
    opl.way(3, [a, b, a], building="yes")
    return opl.write(folder / "odd.opl")


def _parsed(lines: list[tuple[str, str]]) -> dict[int, tuple[list[int], dict[str, str]]]:
    """The COPY lines as the database reads them back (COPY text unescaped)."""
    rows = {}
    for way_id, line in lines:
        head, nodes, tags = line.rstrip("\n").split("\t")
        assert head == way_id
        text = tags.replace("\\\\", "\\")
        refs = [int(n) for n in nodes.strip("{}").split(",") if n]
        rows[int(way_id)] = (refs, json.loads(text))
    return rows


def test_osmium_tool_lines_are_those_of_pyosmium(tmp_path: Path) -> None:
    tool = osmium_tool()
    assert tool is not None
    for path in (WEHR, _odd_file(tmp_path)):
        expected = _ways(path)
        assert _parsed(list(opl_lines(tool, path))) == expected
        assert _parsed(list(pyosmium_lines(path))) == expected
    assert _parsed(list(opl_lines(tool, _odd_file(tmp_path))))[1][1] == {
        "highway": "residential",
        **ODD_TAGS,
    }


def test_import_keeps_every_way_for_updates(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    url = make_database()
    run_import(url, [WEHR], node_dir=tmp_path / "nodes")
    stored = {
        int(way_id): (list(nodes), tags)
        for way_id, nodes, tags in query(url, "SELECT id, nodes, tags FROM osm.mid_ways")
    }
    assert stored == _ways(WEHR)


def test_update_finds_the_ways_of_a_moved_node_through_the_buckets(
    tmp_path: Path, make_database: Callable[[], str]
) -> None:
    """Also for data imported before the bucket index: the update adds it."""
    url = make_database()
    opl = Opl()
    a, b, c = opl.node(9.50, 47.10), opl.node(9.51, 47.10), opl.node(9.52, 47.10)
    opl.way(10, [a, b, c], highway="residential", name="Hauptstrasse")
    opl.square(11, 9.505, 47.105, building="yes")
    nodes = tmp_path / "nodes"
    run_import(url, [opl.write(tmp_path / "town.opl")], node_dir=nodes)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("DROP FUNCTION osm.node_buckets(bigint[]) CASCADE")
    change = tmp_path / "moved.osc"
    change.write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<osmChange version=\"0.6\"><modify>"
        f'<node id="{b}" version="2" timestamp="2024-05-01T10:00:00Z" lon="9.51" lat="47.13"/>'
        "</modify></osmChange>\n",
        encoding="utf-8",
    )
    run_update(url, [change], node_dir=nodes)
    moved = "ST_Transform(ST_SetSRID(ST_MakePoint(9.51, 47.13), 4326), 3857)"
    near = query(url, f"SELECT ST_DWithin(geom, {moved}, 1) FROM osm.streets WHERE osm_id = 10")
    assert near == [(True,)]
    index = query(
        url,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'osm' AND tablename = 'mid_ways' "
        "AND indexdef LIKE '%%node_buckets(nodes)%%'",
    )
    assert len(index) == 1

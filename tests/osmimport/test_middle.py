"""The ways an import keeps for updates: read by osmium-tool, as pyosmium reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import osmium

from osmimport.importer import run_import
from osmimport.inputs import osmium_tool
from osmimport.middleways import opl_lines, pyosmium_lines

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

"""Routing fixtures: road networks loaded into throwaway databases, built graphs and engines."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import osmium
import psycopg2
import psycopg2.extras
import pytest
from psycopg2 import sql
from starlette.applications import Starlette

from osmimport import schema
from osmimport.database import connect
from routing import store
from routing.engine import Engine
from routing.http import routes
from routing.network import data_version
from routing.profiles import PROFILES
from routing.service import RoutingService
from routing.settings import RoutingSettings

with warnings.catch_warnings():
    # Starlette warns about httpx at import; the client works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
LIECHTENSTEIN = ROOT / "data" / "sample" / "liechtenstein-2021-05-05.osm.pbf"


class _RoadHandler(osmium.SimpleHandler):
    """Collects the raw road network exactly as the database contract describes it."""

    def __init__(self) -> None:
        super().__init__()
        self.ways: list[tuple[int, dict[str, str], list[int]]] = []
        self.restrictions: list[tuple[int, dict[str, str], list[dict[str, object]]]] = []
        self.node_tags: dict[int, dict[str, str]] = {}
        self.locations: dict[int, tuple[float, float]] = {}

    def node(self, n: osmium.osm.Node) -> None:
        if n.location.valid():
            self.locations[n.id] = (n.location.lon, n.location.lat)
        if len(n.tags):
            self.node_tags[n.id] = {t.k: t.v for t in n.tags}

    def way(self, w: osmium.osm.Way) -> None:
        tags = {t.k: t.v for t in w.tags}
        if "highway" in tags or tags.get("route") == "ferry":
            self.ways.append((w.id, tags, [n.ref for n in w.nodes]))

    def relation(self, r: osmium.osm.Relation) -> None:
        tags = {t.k: t.v for t in r.tags}
        if tags.get("type") == "restriction" or tags.get("type", "").startswith("restriction:"):
            members = [{"type": m.type, "ref": m.ref, "role": m.role} for m in r.members]
            self.restrictions.append((r.id, tags, members))


def grid_nodes(
    picture: str,
    west: float = 7.0,
    south: float = 48.0,
    step: tuple[float, float] = (0.001, 0.001),
    tags: dict[int, str] | None = None,
) -> str:
    """OPL nodes drawn as a map: node numbers in rows north to south, ``.`` for an empty place.

    Columns are ``step[0]`` degrees apart from ``west``, rows ``step[1]`` apart up from ``south``;
    ``tags`` gives a node's OPL tags (``key=value,...``).
    """
    rows = [line.split() for line in picture.strip().splitlines()]
    nodes: dict[int, tuple[float, float]] = {}
    for row, cells in enumerate(reversed(rows)):
        for column, cell in enumerate(cells):
            if cell != ".":
                nodes[int(cell)] = (west + column * step[0], south + row * step[1])
    tags = tags or {}
    return "".join(
        f"n{node} v1 {'T' + tags[node] + ' ' if node in tags else ''}x{x:.7f} y{y:.7f}\n"
        for node, (x, y) in sorted(nodes.items())
    )


def load_network(url: str, source: Path | str) -> None:
    """Write the road tables of the ``osm`` schema from an OSM file or an OPL string."""
    handler = _RoadHandler()
    if isinstance(source, Path):
        handler.apply_file(str(source))
    else:
        handler.apply_buffer(source.encode(), "opl")
    road_nodes = {node for _, _, nodes in handler.ways for node in nodes}
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            s = sql.Identifier(schema.SCHEMA)

            def table(name: str) -> sql.Identifier:
                return sql.Identifier(schema.SCHEMA, name)

            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (osm_id bigint PRIMARY KEY, tags jsonb, nodes bigint[])"
                ).format(table(schema.ROAD_WAYS_TABLE))
            )
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (osm_id bigint PRIMARY KEY, lon float8, lat float8)"
                ).format(table(schema.ROAD_NODES_TABLE))
            )
            cur.execute(
                sql.SQL("CREATE TABLE {} (osm_id bigint PRIMARY KEY, tags jsonb)").format(
                    table(schema.BARRIERS_TABLE)
                )
            )
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (osm_id bigint PRIMARY KEY, tags jsonb, members jsonb)"
                ).format(table(schema.RESTRICTIONS_TABLE))
            )
            for way_id, tags, nodes in handler.ways:
                cur.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(
                        table(schema.ROAD_WAYS_TABLE)
                    ),
                    (way_id, json.dumps(tags), nodes),
                )
            psycopg2.extras.execute_values(
                cur,
                sql.SQL("INSERT INTO {} VALUES %s").format(table(schema.ROAD_NODES_TABLE)),
                [(n, *handler.locations[n]) for n in road_nodes if n in handler.locations],
            )
            for node, tags in handler.node_tags.items():
                if node in road_nodes:
                    cur.execute(
                        sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(
                            table(schema.BARRIERS_TABLE)
                        ),
                        (node, json.dumps(tags)),
                    )
            for rel_id, tags, members in handler.restrictions:
                cur.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(
                        table(schema.RESTRICTIONS_TABLE)
                    ),
                    (rel_id, json.dumps(tags), json.dumps(members)),
                )
    finally:
        conn.close()


@pytest.fixture
def network_db(make_database: Callable[[], str]) -> Callable[[Path | str], str]:
    """A factory: a throwaway database holding the road network of a file or OPL text."""

    def make(source: Path | str) -> str:
        url = make_database()
        load_network(url, source)
        return url

    return make


@pytest.fixture(scope="session")
def routing_liechtenstein_url(liechtenstein_url: str) -> str:
    """Liechtenstein 2021 imported, with the routing data built."""
    return liechtenstein_url


@pytest.fixture(scope="session")
def mapped(routing_liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The routing data of every profile in a file cache."""
    cache = tmp_path_factory.mktemp("routing-cache")
    version = data_version(routing_liechtenstein_url)
    for name in PROFILES:
        store.load(routing_liechtenstein_url, name, version, cache=cache)
    return cache / version


@pytest.fixture(scope="session")
def engines(routing_liechtenstein_url: str) -> dict[str, Engine]:
    """The engine of each profile on Liechtenstein."""
    from routing.build import load_graph

    return {name: Engine(load_graph(routing_liechtenstein_url, name)) for name in PROFILES}


@pytest.fixture(scope="session")
def service(routing_liechtenstein_url: str) -> RoutingService:
    """A routing service on Liechtenstein."""
    return RoutingService(routing_liechtenstein_url, RoutingSettings(routing_max_coordinates=5))


@pytest.fixture(scope="session")
def client(service: RoutingService) -> Iterator[TestClient]:
    """An HTTP client of a Starlette app made of the routing routes only."""
    with TestClient(Starlette(routes=routes(service))) as test_client:
        yield test_client


def cut_extract(folder: Path, bbox: str) -> Path:
    """The Liechtenstein extract cut to ``bbox`` (ways keep their nodes outside it, without
    their locations), written in ``folder``."""
    cut = folder / "cut.osm.pbf"
    subprocess.run(
        ["osmium", "extract", "--strategy", "simple", "-b", bbox, "-o", str(cut),
         str(LIECHTENSTEIN)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cut

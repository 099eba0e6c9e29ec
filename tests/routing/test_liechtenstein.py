"""Routes on the Liechtenstein extract: known trips, tag rules, restrictions, engine vs networkx."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import networkx as nx
import psycopg2.extras
import pytest

from osmimport import schema
from osmimport.database import connect
from routing.engine import Engine, Route, Snap
from routing.network import haversine

VADUZ = (9.5209, 47.1410)
SCHAAN = (9.5095, 47.1650)
BALZERS = (9.4980, 47.0650)
TRIESENBERG = (9.5420, 47.1180)
NOT_FOR_CARS = {"footway", "path", "cycleway", "steps", "pedestrian", "bridleway"}


def fetch(url: str, query: str) -> list[dict[str, Any]]:
    conn = connect(url)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query)
            return [dict(row) for row in cur.fetchall()]
    finally:
        conn.close()


def route(engine: Engine, a: tuple[float, float], b: tuple[float, float]) -> Route | None:
    return engine.route(engine.snap(*a, radius=500)[0], engine.snap(*b, radius=500)[0])


@pytest.mark.parametrize("profile", ["car", "bike", "foot"])
@pytest.mark.parametrize("trip", [(VADUZ, SCHAAN), (VADUZ, BALZERS), (BALZERS, TRIESENBERG)])
def test_known_routes(engines: dict[str, Engine], profile: str, trip: Any) -> None:
    engine = engines[profile]
    path = route(engine, *trip)
    assert path is not None
    crow = haversine(*trip[0], *trip[1])
    length = engine.length(path)
    assert crow * 0.9 < length < crow * 3
    speed = length / engine.duration(path) * 3.6
    assert {"car": (15, 110), "bike": (8, 20), "foot": (4, 6)}[profile][0] < speed
    assert speed < {"car": (15, 110), "bike": (8, 20), "foot": (4, 6)}[profile][1]


def test_car_never_on_footways(engines: dict[str, Engine], routing_liechtenstein_url: str) -> None:
    tags = {
        row["osm_id"]: row["tags"]
        for row in fetch(
            routing_liechtenstein_url,
            f"SELECT osm_id, tags FROM {schema.SCHEMA}.{schema.ROAD_WAYS_TABLE}",
        )
    }
    engine = engines["car"]
    rng = random.Random(5)
    used: set[int] = set()
    for _ in range(60):
        a = Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0)
        b = Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0)
        path = engine.route(a, b)
        if path is not None:
            used.update(engine.edges[p.edge]["way_id"] for p in path.parts)
    assert len(used) > 200
    for way in used:
        assert tags[way].get("highway") not in NOT_FOR_CARS
        # Private streets are restricted, not closed: a route may start or end on them.
        assert tags[way].get("motor_vehicle") != "no"


def test_restricted_turns_are_never_taken(
    engines: dict[str, Engine], routing_liechtenstein_url: str
) -> None:
    rows = fetch(
        routing_liechtenstein_url,
        f"SELECT osm_id, tags, members FROM {schema.SCHEMA}.{schema.RESTRICTIONS_TABLE}",
    )
    engine = engines["car"]
    by_way: dict[int, list[int]] = {}
    leaving: dict[int, list[int]] = {}
    for k, data in enumerate(engine.edges):
        by_way.setdefault(data["way_id"], []).append(k)
        leaving.setdefault(engine.tail[k], []).append(k)
    checked = 0
    for row in rows:
        value = row["tags"].get("restriction", "")
        members = row["members"]
        via = [m["ref"] for m in members if m["role"] == "via" and m["type"] == "n"]
        froms = [m["ref"] for m in members if m["role"] == "from"]
        tos = [m["ref"] for m in members if m["role"] == "to"]
        if not via or len(froms) != 1 or len(tos) != 1 or "except" in row["tags"]:
            continue
        into = [k for k in by_way.get(froms[0], []) if engine.head[k] == via[0]]
        out = [k for k in by_way.get(tos[0], []) if engine.tail[k] == via[0]]
        for a in into:
            for b in out:
                start = Snap(a, 0.5, 0, 0, 0)
                for end_edge in leaving[via[0]]:
                    path = engine.route(start, Snap(end_edge, 0.5, 0, 0, 0))
                    if path is None:
                        continue
                    pairs = list(zip(path.parts, path.parts[1:], strict=False))
                    for first, second in pairs:
                        if first.edge in into and engine.head[first.edge] == via[0]:
                            if value.startswith("no_"):
                                assert second.edge != b, row["osm_id"]
                            elif value.startswith("only_"):
                                assert engine.edges[second.edge]["way_id"] == tos[0], row["osm_id"]
                    checked += 1
    assert checked > 50


def _oneway_for_cars_only(url: str) -> dict[str, Any]:
    rows = fetch(
        url,
        f"SELECT osm_id, nodes FROM {schema.SCHEMA}.{schema.ROAD_WAYS_TABLE} "
        "WHERE tags->>'oneway' = 'yes' AND tags->>'oneway:bicycle' = 'no' "
        "AND tags->>'highway' IN ('residential', 'unclassified', 'tertiary', 'service') "
        "ORDER BY osm_id",
    )
    assert rows, "the extract has oneway streets open to bikes both ways"
    return rows[0]


def test_oneway_by_car_both_ways_by_bike(
    engines: dict[str, Engine], routing_liechtenstein_url: str
) -> None:
    way = _oneway_for_cars_only(routing_liechtenstein_url)
    nodes = way["nodes"]
    coords = {
        row["osm_id"]: (row["lon"], row["lat"])
        for row in fetch(
            routing_liechtenstein_url,
            f"SELECT osm_id, lon, lat FROM {schema.SCHEMA}.{schema.ROAD_NODES_TABLE} "
            f"WHERE osm_id IN ({','.join(str(n) for n in nodes)})",
        )
    }
    first = tuple(
        a + (b - a) * 0.2 for a, b in zip(coords[nodes[0]], coords[nodes[1]], strict=True)
    )
    last = tuple(
        a + (b - a) * 0.8 for a, b in zip(coords[nodes[-2]], coords[nodes[-1]], strict=True)
    )

    def directions(profile: str, a: Any, b: Any) -> set[bool]:
        engine = engines[profile]
        path = route(engine, a, b)
        assert path is not None
        found = set()
        for part in path.parts:
            data = engine.edges[part.edge]
            if data["way_id"] == way["osm_id"] and len(data["nodes"]) > 1:
                found.add(nodes.index(data["nodes"][0]) < nodes.index(data["nodes"][-1]))
        return found

    assert directions("car", first, last) == {True}
    assert False not in directions("car", last, first)
    assert directions("bike", first, last) == {True}
    assert directions("bike", last, first) == {False}


@pytest.mark.parametrize(("profile", "pairs"), [("car", 300), ("bike", 100), ("foot", 100)])
def test_engine_equals_networkx(engines: dict[str, Engine], profile: str, pairs: int) -> None:
    engine = engines[profile]
    turns = engine.turn_graph()
    rng = random.Random(42)
    found = 0
    for _ in range(pairs):
        a = Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0)
        b = Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0)
        graph = turns
        graph.add_nodes_from(["source", "target"])
        for node, (cost, _) in engine.sources(a).items():
            graph.add_edge("source", node, weight=cost)
        for node, cost in engine.targets(b).items():
            graph.add_edge(node, "target", weight=cost)
        expected: int | None
        try:
            expected = nx.dijkstra_path_length(graph, "source", "target")
        except nx.NetworkXNoPath:
            expected = None
        graph.remove_nodes_from(["source", "target"])
        direct = [
            round(fb * engine.weight[e]) - round(fa * engine.weight[e])
            for e, fa in engine.directions(a)
            for e2, fb in engine.directions(b)
            if e == e2 and fb >= fa
        ]
        if direct:
            expected = min([*direct, *([expected] if expected is not None else [])])
        got = engine.weight_of(a, b)
        assert got == expected
        found += got is not None
    assert found > pairs // 2


@pytest.mark.parametrize("profile", ["car", "foot"])
def test_one_to_many_weights_equal_the_single_routes(
    engines: dict[str, Engine], profile: str
) -> None:
    # /table's one search per source against the route engine's answer for every pair.
    engine = engines[profile]
    rng = random.Random(8)
    starts = [Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0) for _ in range(12)]
    ends = [Snap(rng.randrange(len(engine.edges)), rng.random(), 0, 0, 0) for _ in range(15)]
    # A start and an end on the same edge, both ways round, exercise the direct paths.
    ends += [replace(starts[0], fraction=0.99), replace(starts[1], fraction=0.01)]
    table = engine.weights(starts, ends)
    expected = [[engine.weight_of(a, b) for b in ends] for a in starts]
    assert table == expected
    assert sum(w is not None for row in expected for w in row) > len(starts) * len(ends) // 2


def test_routes_from_and_to_junctions_charge_only_the_turns_taken(
    engines: dict[str, Engine],
) -> None:
    # A point on a junction starts or ends there: no turn out of or into a road not travelled,
    # so the weight (what the search minimised) is the reported duration, to the millisecond
    # rounding of each edge.
    car = engines["car"]
    rng = random.Random(12)
    nodes = list(car.graph.nodes(data=True))
    checked = 0
    while checked < 100:
        (_, a), (_, b) = rng.choice(nodes), rng.choice(nodes)
        start = car.snap(a["x"], a["y"], radius=1.0)
        end = car.snap(b["x"], b["y"], radius=1.0)
        if not start or not end:
            continue
        assert start[0].fraction in (0.0, 1.0) and end[0].fraction in (0.0, 1.0)
        path = car.route(start[0], end[0])
        if path is None or car.restricted[path.edges].any():
            # Entering a restricted street weighs more than it takes (test_destination.py).
            continue
        checked += 1
        assert car.duration(path) == pytest.approx(path.weight / 1000, abs=5e-4 * len(path.edges))

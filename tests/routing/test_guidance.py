"""Turn-by-turn steps: roundabout exits, intersections, ramps, field types, bearings options."""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql
from starlette.applications import Starlette

from osmimport import schema
from osmimport.database import connect
from routing.build import build_graphs
from routing.http import routes
from routing.network import bearing, haversine
from routing.polyline import decode
from routing.profiles import PROFILES
from routing.service import RoutingService

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CAR = PROFILES["car"]
VADUZ = "9.5209,47.1410"
BALZERS = "9.4980,47.0650"


def road_data(url: str) -> tuple[list[tuple[int, dict[str, str], list[int]]], dict[int, Any]]:
    """Every road way and node location straight from the database."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT osm_id, tags, nodes FROM {}").format(
                    sql.Identifier(schema.SCHEMA, schema.ROAD_WAYS_TABLE)
                )
            )
            ways = [(int(i), tags or {}, list(nodes)) for i, tags, nodes in cur.fetchall()]
            cur.execute(
                sql.SQL("SELECT osm_id, lon, lat FROM {}").format(
                    sql.Identifier(schema.SCHEMA, schema.ROAD_NODES_TABLE)
                )
            )
            locations = {int(i): (lon, lat) for i, lon, lat in cur.fetchall()}
    finally:
        conn.close()
    return ways, locations


def _neighbours(tags: dict[str, str], nodes: list[int], node: int, *, arriving: bool) -> list[int]:
    """Neighbours a car may drive to from ``node`` along a way, or with ``arriving`` come to
    ``node`` from (none when it may not use the way)."""
    rule = CAR.way(tags)
    if rule is None:
        return []
    ahead, behind = (-1, 1) if arriving else (1, -1)
    found = []
    for i, n in enumerate(nodes):
        if n != node:
            continue
        for allowed, step in ((rule.forward, ahead), (rule.backward, behind)):
            if allowed and 0 <= i + step < len(nodes):
                found.append(nodes[i + step])
    return found


def roundabout_trips(url: str) -> list[dict[str, Any]]:
    """Entry/exit pairs of single-way roundabouts with the exit count read off the ways: the
    car-usable roads leaving the ring at each node after the entry, up to the exit node (whose
    only such road is the one taken)."""
    ways, locations = road_data(url)
    at: dict[int, list[tuple[dict[str, str], list[int]]]] = defaultdict(list)
    for _, tags, nodes in ways:
        if tags.get("junction") not in {"roundabout", "circular"}:
            for node in set(nodes):
                at[node].append((tags, nodes))
    trips = []
    for _, tags, ring in ways:
        if tags.get("junction") != "roundabout" or ring[0] != ring[-1] or CAR.way(tags) is None:
            continue
        order = ring[:-1]
        for i, entry in enumerate(order):
            sources = [n for t, ns in at[entry] for n in _neighbours(t, ns, entry, arriving=True)]
            if not sources:
                continue
            exits = 0
            for j in range(1, len(order)):
                node = order[(i + j) % len(order)]
                targets = [
                    n for t, ns in at[node] for n in _neighbours(t, ns, node, arriving=False)
                ]
                exits += len(targets)
                if len(targets) == 1 and j >= 1:
                    trips.append(
                        {
                            "entry": entry,
                            "exit": node,
                            "after": targets[0],
                            "count": exits,
                            "start": _middle(locations[sources[0]], locations[entry]),
                            "end": _middle(locations[node], locations[targets[0]]),
                            "entry_at": locations[entry],
                            "exit_at": locations[node],
                        }
                    )
    return trips


def _middle(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


def _same_place(location: list[float], point: tuple[float, float]) -> bool:
    return haversine(location[0], location[1], point[0], point[1]) < 0.5


def trip_leg(client: TestClient, trip: dict[str, Any]) -> dict[str, Any] | None:
    """The car route's leg with steps from a trip's start to its end, None when not routed."""
    (slon, slat), (elon, elat) = trip["start"], trip["end"]
    answer = client.get(
        f"/route/v1/driving/{slon},{slat};{elon},{elat}",
        params={"steps": "true", "radiuses": "5;5"},
    )
    if answer.status_code != 200:
        return None
    leg: dict[str, Any] = answer.json()["routes"][0]["legs"][0]
    return leg


def test_roundabout_exit_counts(client: TestClient, routing_liechtenstein_url: str) -> None:
    trips = roundabout_trips(routing_liechtenstein_url)
    assert len(trips) > 10
    checked = 0
    for trip in trips:
        leg = trip_leg(client, trip)
        if leg is None:
            continue
        steps = leg["steps"]
        kinds = [step["maneuver"]["type"] for step in steps]
        if kinds != ["depart", "roundabout", "exit roundabout", "arrive"]:
            continue
        enter, leave = steps[1]["maneuver"], steps[2]["maneuver"]
        if not (
            _same_place(enter["location"], trip["entry_at"])
            and _same_place(leave["location"], trip["exit_at"])
        ):
            continue
        assert enter["exit"] == trip["count"], trip
        assert leave["exit"] == trip["count"]
        assert isinstance(enter["modifier"], str) and isinstance(leave["modifier"], str)
        checked += 1
    # Several distinct real roundabout passages, each counted like the ways say.
    assert checked >= 5


def test_intersections_match_the_geometry(client: TestClient) -> None:
    answer = client.get(
        f"/route/v1/driving/{VADUZ};{BALZERS}",
        params={"steps": "true", "geometries": "geojson", "overview": "full"},
    )
    assert answer.status_code == 200
    route = answer.json()["routes"][0]
    line = [tuple(point) for point in route["geometry"]["coordinates"]]
    index = {point: i for i, point in enumerate(line)}
    steps = route["legs"][0]["steps"]
    seen = 0
    for step in steps:
        coords = step["geometry"]["coordinates"]
        assert coords[0] == step["maneuver"]["location"]
        for intersection in step["intersections"]:
            bearings, entry = intersection["bearings"], intersection["entry"]
            assert len(bearings) == len(entry) >= 1
            assert bearings == sorted(bearings)
            assert all(isinstance(b, int) and 0 <= b < 360 for b in bearings)
            position = index[tuple(intersection["location"])]
            if "out" in intersection:
                assert entry[intersection["out"]] is True
                after = next(p for p in line[position + 1 :] if p != line[position])
                if haversine(*line[position], *after) > 5:
                    expected = bearing(*line[position], *after)
                    diff = abs(bearings[intersection["out"]] - expected) % 360
                    assert min(diff, 360 - diff) < 3
            if "in" in intersection:
                back = next(p for p in reversed(line[:position]) if p != line[position])
                if haversine(*line[position], *back) > 5:
                    expected = bearing(*line[position], *back)
                    diff = abs(bearings[intersection["in"]] - expected) % 360
                    assert min(diff, 360 - diff) < 3
            seen += 1
    assert seen > len(steps)


def test_step_fields_and_types(client: TestClient) -> None:
    answer = client.get(
        f"/route/v1/driving/{VADUZ};{BALZERS}",
        params={"steps": "true", "geometries": "polyline6", "overview": "false"},
    )
    leg = answer.json()["routes"][0]["legs"][0]
    steps = leg["steps"]
    types = {
        "turn",
        "new name",
        "depart",
        "arrive",
        "merge",
        "on ramp",
        "off ramp",
        "fork",
        "end of road",
        "continue",
        "roundabout",
        "rotary",
        "exit roundabout",
        "exit rotary",
    }
    modifiers = {
        "uturn",
        "sharp right",
        "right",
        "slight right",
        "straight",
        "slight left",
        "left",
        "sharp left",
    }
    for step in steps:
        maneuver = step["maneuver"]
        assert maneuver["type"] in types
        assert maneuver.get("modifier", "straight") in modifiers
        if "exit" in maneuver:
            assert isinstance(maneuver["exit"], int) and maneuver["exit"] >= 1
        assert step["driving_side"] == "right" and step["mode"] == "driving"
        for name in ("weight", "duration", "distance"):
            assert isinstance(step[name], int | float)
        assert isinstance(step["name"], str)
        assert isinstance(step.get("ref", ""), str)
        coords = decode(step["geometry"], 6)
        assert coords[0] == pytest.approx(tuple(maneuver["location"]), abs=1e-6)
        assert len(coords) >= 2
    # Consecutive steps meet: a step ends where the next one's maneuver is.
    for step, following in zip(steps, steps[1:], strict=False):
        assert decode(step["geometry"], 6)[-1] == pytest.approx(
            tuple(following["maneuver"]["location"]), abs=1e-6
        )
    assert sum(step["distance"] for step in steps) == pytest.approx(leg["distance"], abs=2)
    # Collapsed like OSRM: no step repeats the previous one's road going straight on.
    for step, following in zip(steps, steps[1:], strict=False):
        maneuver = following["maneuver"]
        if maneuver["type"] == "new name":
            assert (step["name"], step.get("ref")) != (following["name"], following.get("ref"))


RAMP_NODES = """\
n1 v1 x7.0000 y48.0000
n2 v1 x7.0050 y48.0000
n3 v1 x7.0100 y48.0000
n4 v1 x7.0130 y48.0020
n5 v1 x7.0160 y48.0050
n6 v1 x7.0100 y48.0060
n7 v1 x7.0250 y48.0060
n8 v1 x7.0300 y48.0060
"""
RAMP_WAYS = """\
w1 v1 Thighway=primary,name=Hauptstrasse Nn1,n2,n3
w2 v1 Thighway=motorway_link,oneway=yes,destination=Chur;Buchs,destination:ref=A%20%13 Nn3,n4,n5
w3 v1 Thighway=motorway,ref=A%20%13,oneway=yes Nn6,n5,n7,n8
"""


def test_on_ramp_merge_and_destinations(network_db: Callable[[Path | str], str]) -> None:
    url = network_db(RAMP_NODES + RAMP_WAYS)
    build_graphs(url, quiet=True)
    with TestClient(Starlette(routes=routes(RoutingService(url)))) as local:
        answer = local.get("/route/v1/driving/7.0010,48.0000;7.0280,48.0060?steps=true")
    assert answer.status_code == 200, answer.text
    steps = answer.json()["routes"][0]["legs"][0]["steps"]
    kinds = [step["maneuver"]["type"] for step in steps]
    assert kinds == ["depart", "on ramp", "merge", "arrive"]
    assert steps[1]["destinations"] == "A 13: Chur, Buchs"
    assert steps[2]["ref"] == "A 13" and steps[2]["maneuver"]["modifier"] == "slight right"


def test_bearings_choose_the_departure_direction(client: TestClient) -> None:
    directions = []
    for heading in (0, 180):
        answer = client.get(
            f"/route/v1/driving/{VADUZ};{BALZERS}",
            params={"steps": "true", "bearings": f"{heading},60;", "overview": "false"},
        )
        if answer.status_code != 200:
            assert answer.json()["code"] in {"NoSegment", "NoRoute"}
            continue
        after = answer.json()["routes"][0]["legs"][0]["steps"][0]["maneuver"]["bearing_after"]
        diff = abs(after - heading) % 360
        assert min(diff, 360 - diff) <= 60
        directions.append(after)
    assert directions
    bad = client.get(f"/route/v1/driving/{VADUZ};{BALZERS}", params={"bearings": "400,10;"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidOptions"


def test_continue_straight_avoids_u_turns_at_via_points(client: TestClient) -> None:
    via = "9.5215,47.1300"
    counts = {}
    for value in ("true", "false"):
        answer = client.get(
            f"/route/v1/driving/{VADUZ};{via};{BALZERS}",
            params={"steps": "true", "continue_straight": value, "overview": "false"},
        )
        assert answer.status_code == 200
        route = answer.json()["routes"][0]
        second = route["legs"][1]["steps"][0]["maneuver"]["bearing_after"]
        arrive = route["legs"][0]["steps"][-1]["maneuver"]["bearing_before"]
        counts[value] = (route["duration"], arrive, second)
    # Going on straight is never faster than being free to turn back.
    assert counts["true"][0] >= counts["false"][0] - 0.5
    arrive, second = counts["true"][1], counts["true"][2]
    diff = abs(second - arrive) % 360
    assert min(diff, 360 - diff) < 90


def ring_kinds(url: str) -> dict[int, tuple[str, str]]:
    """Per node of each single-way car roundabout, OSRM's kind of ring and its name, worked out
    from the raw ways: the ring's radius from its length, the nodes with roads off it, the names
    of those roads and the bearings of the first piece of each."""
    ways, locations = road_data(url)
    off: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for _, tags, nodes in ways:
        if tags.get("junction") in {"roundabout", "circular"} or CAR.way(tags) is None:
            continue
        for i, node in enumerate(nodes):
            for j in (i - 1, i + 1):
                if 0 <= j < len(nodes):
                    off[node].append((tags.get("name", ""), nodes[j]))
    kinds: dict[int, tuple[str, str]] = {}
    for _, tags, ring in ways:
        if tags.get("junction") != "roundabout" or ring[0] != ring[-1] or CAR.way(tags) is None:
            continue
        length = sum(
            haversine(*locations[a], *locations[b]) for a, b in zip(ring, ring[1:], strict=False)
        )
        radius = length / (2 * math.pi)
        exits = [node for node in ring[:-1] if off[node]]
        name = tags.get("name", "")
        connected = {road_name for node in exits for road_name, _ in off[node]}
        if not exits:
            continue
        if len(exits) == 1:
            kind = "roundabout turn"
        elif name and name not in connected and radius > 15:
            kind = "rotary"
        else:
            bearings = sorted(bearing(*locations[n], *locations[off[n][0][1]]) for n in exits)
            distinct = all(
                abs(bearings[(i + 1) % len(bearings)] - bearings[i]) > 40
                for i in range(len(bearings))
            )
            simple = all(len(off[n]) == 1 for n in exits)
            small = radius < 15 and len(exits) <= 4
            kind = "roundabout turn" if distinct and simple and small else "roundabout"
        for node in ring[:-1]:
            kinds[node] = (kind, name)
    return kinds


def test_ring_kinds_names_and_exits(client: TestClient, routing_liechtenstein_url: str) -> None:
    kinds = ring_kinds(routing_liechtenstein_url)
    ways, _ = road_data(routing_liechtenstein_url)
    # The name of the road a car leaves a ring by, per (exit node, next node).
    names = {
        (a, b): tags.get("name", "")
        for _, tags, nodes in ways
        if tags.get("junction") != "roundabout"
        for x, y in zip(nodes, nodes[1:], strict=False)
        for a, b in ((x, y), (y, x))
    }
    exits = {"roundabout": "exit roundabout", "rotary": "exit rotary"}
    exits["roundabout turn"] = "exit roundabout"
    checked: Counter[str] = Counter()
    for trip in roundabout_trips(routing_liechtenstein_url):
        leg = trip_leg(client, trip)
        if leg is None:
            continue
        steps = leg["steps"]
        if len(steps) != 4 or not (
            _same_place(steps[1]["maneuver"]["location"], trip["entry_at"])
            and _same_place(steps[2]["maneuver"]["location"], trip["exit_at"])
        ):
            continue
        kind, ring_name = kinds[trip["entry"]]
        enter, leave = steps[1], steps[2]
        assert enter["maneuver"]["type"] == kind, trip
        assert leave["maneuver"]["type"] == exits[kind]
        assert enter["maneuver"]["exit"] == leave["maneuver"]["exit"] == trip["count"]
        # Both ring steps are named after the road the ring is left by, like OSRM's.
        assert enter["name"] == leave["name"] == names[(trip["exit"], trip["after"])]
        if kind == "rotary":
            assert enter["rotary_name"] == ring_name
        else:
            assert "rotary_name" not in enter
        checked[kind] += 1
    assert sum(checked.values()) >= 5, checked


def test_foot_crosses_two_way_rings_as_plain_roads(
    client: TestClient, routing_liechtenstein_url: str
) -> None:
    # Rings open to walkers both ways have no way round to count exits by: OSRM gives turns.
    trips = roundabout_trips(routing_liechtenstein_url)
    seen = 0
    for trip in trips[:20]:
        (slon, slat), (elon, elat) = trip["start"], trip["end"]
        answer = client.get(f"/route/v1/foot/{slon},{slat};{elon},{elat}", params={"steps": "true"})
        if answer.status_code != 200:
            continue
        kinds = {s["maneuver"]["type"] for s in answer.json()["routes"][0]["legs"][0]["steps"]}
        assert not kinds & {"roundabout", "rotary", "roundabout turn", "exit roundabout"}
        seen += 1
    assert seen >= 5


FERRY = """\
n1 v1 x7.0000 y48.0000
n2 v1 x7.0100 y48.0000
n3 v1 x7.0300 y48.0000
n4 v1 x7.0400 y48.0000
w1 v1 Thighway=secondary,name=Quai Nn1,n2
w2 v1 Troute=ferry,name=Bac,duration=00:10 Nn2,n3
w3 v1 Thighway=secondary,name=Rive Nn3,n4
"""


def test_boarding_a_ferry_is_a_notification(network_db: Callable[[Path | str], str]) -> None:
    url = network_db(FERRY)
    build_graphs(url, quiet=True)
    with TestClient(Starlette(routes=routes(RoutingService(url)))) as local:
        answer = local.get("/route/v1/driving/7.0010,48.0000;7.0390,48.0000?steps=true")
    assert answer.status_code == 200, answer.text
    steps = answer.json()["routes"][0]["legs"][0]["steps"]
    assert [s["maneuver"]["type"] for s in steps] == [
        "depart",
        "notification",
        "notification",
        "arrive",
    ]
    assert [s["mode"] for s in steps] == ["driving", "ferry", "driving", "driving"]
    assert [s["name"] for s in steps] == ["Quai", "Bac", "Rive", "Rive"]
    assert steps[1]["maneuver"]["modifier"] == "straight"

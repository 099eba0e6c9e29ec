"""Turn costs as OSRM's car profile charges them: route choice, durations, steps, tables."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from routing.build import build_graphs, load_graph
from routing.engine import Engine, Route
from tests.routing.conftest import grid_nodes

# car.lua's values, written out here rather than read from the profile under test.
TURN_PENALTY = 7.5
TURN_BIAS = 1.075
U_TURN_PENALTY = 20.0

# A road east along 48.000 N (w1), then two ways on to the junction x (7.003, 48.001):
# w2 bends gently (no junction on the way), w3 + w4 turn left then right. w5 is a stub that
# makes r a junction; w6 leads on east from x.
NODES = grid_nodes(
    """
    8 . 7 . . 4 5 . 6
    1 . 2 3 . . . . .
    """,
    step=(0.0005, 0.001),
)
OPL = (
    "w1 v1 Thighway=unclassified,maxspeed=50 Nn1,n2\n"
    "w2 v1 Thighway=unclassified,maxspeed=35 Nn2,n3,n4,n5\n"
    "w3 v1 Thighway=unclassified,maxspeed=50 Nn2,n7\n"
    "w4 v1 Thighway=unclassified,maxspeed=50 Nn7,n5\n"
    "w5 v1 Thighway=unclassified,maxspeed=50 Nn7,n8\n"
    "w6 v1 Thighway=unclassified,maxspeed=50 Nn5,n6\n"
)
COORDS = {
    int(line.split()[0][1:]): (float(line.split()[2][1:]), float(line.split()[3][1:]))
    for line in NODES.splitlines()
}


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    x = math.sin(lon2 - lon1) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(x, y)) % 360.0


def car_turn(angle: float, roads: int, u_turn: bool = False, mode_change: bool = False) -> float:
    """car.lua's ``process_turn``: angle positive to the right, -180..180."""
    if roads <= 2 and not u_turn and not mode_change:
        return 0.0
    if angle >= 0:
        cost = TURN_PENALTY / (1 + math.exp(-((13 / TURN_BIAS) * angle / 180 - 6.5 * TURN_BIAS)))
    else:
        cost = TURN_PENALTY / (1 + math.exp(-((13 * TURN_BIAS) * -angle / 180 - 6.5 / TURN_BIAS)))
    return cost + (U_TURN_PENALTY if u_turn else 0.0)


def _angle(before: float, after: float) -> float:
    return (after - before + 540.0) % 360.0 - 180.0


def _turn_at(via: int, came_from: int, going_to: int, roads: int) -> float:
    """Seconds of the turn at node ``via`` between the given neighbouring nodes."""
    before = _bearing(COORDS[came_from], COORDS[via])
    after = _bearing(COORDS[via], COORDS[going_to])
    return car_turn(_angle(before, after), roads)


def _edge(engine: Engine, way: int, tail: int) -> int:
    return next(
        key
        for key, data in enumerate(engine.edges)
        if data["way_id"] == way and engine.tail[key] == tail
    )


def test_two_turns_lose_to_a_slower_straight_road(
    network_db: Callable[[Path | str], str],
) -> None:
    url = network_db(NODES + OPL)
    build_graphs(url, quiet=True)
    car = Engine(load_graph(url, "car"))
    start = car.snap(7.0005, 48.0, radius=50)[0]
    end = car.snap(7.0035, 48.001, radius=50)[0]
    path = car.route(start, end)
    assert path is not None
    assert [car.edges[p.edge]["way_id"] for p in path.parts] == [1, 2, 6]

    straight = [_edge(car, 1, 1), _edge(car, 2, 2), _edge(car, 6, 5)]
    turning = [_edge(car, 1, 1), _edge(car, 3, 2), _edge(car, 4, 7), _edge(car, 6, 5)]
    assert path.edges.tolist() == straight
    other = Route(np.asarray(turning), path.start, path.end, 0)

    def travel(edges: list[int]) -> float:
        times = [float(car.edges[e]["travel_time"]) for e in edges]
        times[0] *= 1.0 - path.start
        times[-1] *= path.end
        return sum(times)

    # Without turn costs the turning way would be the faster one.
    assert travel(turning) < travel(straight)
    # n2, n7 and n5 are junctions of three roads each.
    turns_turning = _turn_at(2, 1, 7, 3) + _turn_at(7, 2, 5, 3) + _turn_at(5, 7, 6, 3)
    turns_straight = _turn_at(2, 1, 3, 3) + _turn_at(5, 4, 6, 3)
    # A left turn and a right one: about 5.4 s and 2.1 s.
    assert 7.0 < turns_turning < 8.0
    assert turns_straight < 0.1
    assert travel(straight) < travel(turning) + turns_turning
    assert math.isclose(car.duration(path), travel(straight) + turns_straight, abs_tol=2e-3)
    assert math.isclose(car.duration(other), travel(turning) + turns_turning, abs_tol=3e-3)
    # The integer weight (ms) the search minimised holds the same turn costs.
    assert abs(path.weight - 1000 * (travel(straight) + turns_straight)) <= 4
    # The arcs of the turn graph carry them: the arc w1 -> w3 costs w1 and the left turn.
    graph = car.turn_graph()
    left = graph.edges[turning[0], turning[1]]["weight"]
    assert left == car.weight[turning[0]] + round(1000 * _turn_at(2, 1, 7, 3))


def test_u_turn_at_a_dead_end_costs_the_u_turn_penalty(
    network_db: Callable[[Path | str], str],
) -> None:
    url = network_db(NODES + "w1 v1 Thighway=unclassified,maxspeed=50 Nn1,n2\n")
    build_graphs(url, quiet=True)
    car = Engine(load_graph(url, "car"))
    forward, back = _edge(car, 1, 1), _edge(car, 1, 2)
    path = Route(np.asarray([forward, back]), 0.5, 0.6, 0)
    expected = (
        float(car.edges[forward]["travel_time"]) * 0.5 + float(car.edges[back]["travel_time"]) * 0.6
    )
    expected += car_turn(180.0, 1, u_turn=True)
    assert math.isclose(car.duration(path), expected, abs_tol=2e-3)
    foot = Engine(load_graph(url, "foot"))
    forward, back = _edge(foot, 1, 1), _edge(foot, 1, 2)
    path = Route(np.asarray([forward, back]), 0.5, 0.6, 0)
    walked = (
        float(foot.edges[forward]["travel_time"]) * 0.5
        + float(foot.edges[back]["travel_time"]) * 0.6
    )
    # foot.lua charges nothing for the angle, 2 s for turning back.
    assert math.isclose(foot.duration(path), walked + 2.0, abs_tol=2e-3)


def _arc_turns(engine: Engine, count: int) -> list[tuple[int, int, int]]:
    """``count`` random arcs between original edges: (tail edge, head edge, turn ms)."""
    tails, heads, weights = engine.arcs
    rng = random.Random(5)
    found = []
    for i in rng.sample(range(len(tails)), count):
        a, b = engine.origin[tails[i]], engine.origin[heads[i]]
        # Less the restricted-area penalty, which is weight, not time.
        penalty = int(engine.restricted_ms(np.asarray([a]), np.asarray([b]))[0])
        found.append((a, b, weights[i] - engine.weight[a] - penalty))
    return found


def _roads(engine: Engine) -> dict[int, int]:
    """Roads meeting at each node: edges leaving it and one-way edges arriving at it."""
    roads: dict[int, int] = {}
    for key, data in enumerate(engine.edges):
        roads[engine.tail[key]] = roads.get(engine.tail[key], 0) + 1
        if data["reverse"] < 0:
            roads[engine.head[key]] = roads.get(engine.head[key], 0) + 1
    return roads


def _edge_turn(engine: Engine, roads: dict[int, int], a: int, b: int) -> float:
    """Seconds of turning from edge ``a`` into edge ``b``, from their geometry."""
    line_a, line_b = engine.edges[a]["geometry"], engine.edges[b]["geometry"]
    u_turn = engine.edges[a]["reverse"] == b
    before = _bearing(tuple(line_a[-2]), tuple(line_a[-1]))
    after = _bearing(tuple(line_b[0]), tuple(line_b[1]))
    angle = 180.0 if u_turn else _angle(before, after)
    mode_change = engine.edges[a]["mode"] != engine.edges[b]["mode"]
    return car_turn(angle, roads[engine.head[a]], u_turn, mode_change)


def test_arc_weights_are_edge_plus_turn(engines: dict[str, Engine]) -> None:
    car = engines["car"]
    roads = _roads(car)
    costly = 0
    for a, b, turn in _arc_turns(car, 400):
        # Within a millisecond: the rounding of a cost computed twice.
        assert abs(turn - 1000 * _edge_turn(car, roads, a, b)) <= 0.5 + 1e-6
        costly += turn > 0
    assert costly > 100


def _leg(client: TestClient, query: str) -> dict[str, Any]:
    response = client.get(query)
    assert response.status_code == 200, response.text
    route: dict[str, Any] = response.json()["routes"][0]
    assert len(route["legs"]) == 1
    leg: dict[str, Any] = route["legs"][0]
    assert leg["duration"] == route["duration"] and route["weight"] == route["duration"]
    return leg


def test_steps_annotations_and_table_include_turns(
    client: TestClient, engines: dict[str, Engine]
) -> None:
    car = engines["car"]
    roads = _roads(car)
    rng = random.Random(11)
    checked = 0
    while checked < 15:
        a, b = rng.randrange(len(car.edges)), rng.randrange(len(car.edges))
        (lon1, lat1), (lon2, lat2) = car.edges[a]["geometry"][0], car.edges[b]["geometry"][-1]
        if math.hypot(lon1 - lon2, lat1 - lat2) < 0.01:
            continue
        coords = f"{lon1},{lat1};{lon2},{lat2}"
        start = car.snap(lon1, lat1, radius=None)[0]
        end = car.snap(lon2, lat2, radius=None)[0]
        path = car.route(start, end)
        if path is None or len(path.edges) < 3 or car.small(start) or car.small(end):
            continue
        checked += 1
        travel = float(car.edge_time[path.edges] @ path.shares)
        edges = path.edges.tolist()
        turns = sum(_edge_turn(car, roads, a, b) for a, b in zip(edges, edges[1:], strict=False))
        assert turns > 0
        assert math.isclose(car.duration(path), travel + turns, abs_tol=1e-3 * len(edges))
        leg = _leg(
            client,
            f"/route/v1/driving/{coords}?steps=true&annotations=duration,distance&overview=false",
        )
        assert abs(leg["duration"] - (travel + turns)) <= 0.05 + 1e-3 * len(edges)
        steps = sum(step["duration"] for step in leg["steps"])
        assert abs(steps - leg["duration"]) <= 0.05 * len(leg["steps"]) + 1e-9
        annotated = sum(leg["annotation"]["duration"])
        assert abs(annotated - leg["duration"]) <= 0.05 * len(leg["annotation"]["duration"])
        table = client.get(f"/table/v1/driving/{coords}?sources=0&destinations=1")
        assert table.status_code == 200
        # The table's durations come from the integer weights (ms), the leg's from the edges.
        assert table.json()["durations"][0][0] == pytest.approx(leg["duration"], abs=0.1)

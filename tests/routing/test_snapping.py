"""Snapping as OSRM: never onto a part of the turn graph the other coordinates can't reach."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from routing.build import build_graphs
from routing.engine import Engine
from routing.errors import OsrmError
from routing.http import routes
from routing.service import RoutingService
from routing.settings import RoutingSettings
from tests.routing.conftest import ROOT, grid_nodes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# A block of two-way streets around the junction J (n2). w1 comes one-way into J from n1, and
# every way out of J from w1 is forbidden by a turn restriction; n1 itself is on the block
# (w5), so J and n1 are both well connected in the road graph. w7 is a one-way dead end.
OPL = (
    grid_nodes(
        """
    6 4 . .
    1 2 3 7
    . 5 . .
    """,
        south=47.999,
    )
    + """\
w1 v1 Thighway=residential,oneway=yes Nn1,n2
w2 v1 Thighway=residential Nn2,n3
w3 v1 Thighway=residential Nn2,n4
w4 v1 Thighway=residential Nn2,n5
w5 v1 Thighway=residential Nn1,n6,n4
w6 v1 Thighway=residential Nn3,n4
w7 v1 Thighway=residential,oneway=yes Nn3,n7
r1 v1 Ttype=restriction,restriction=no_straight_on Mw1@from,n2@via,w2@to
r2 v1 Ttype=restriction,restriction=no_left_turn Mw1@from,n2@via,w3@to
r3 v1 Ttype=restriction,restriction=no_right_turn Mw1@from,n2@via,w4@to
"""
)
#: 2.5 cm west of J, on w1.
NEAR_J = (7.001 - 0.025 / 74_490, 48.0)
#: On w6, the diagonal from n3 to n4.
ON_W6 = (7.0015, 48.0005)
#: On the one-way dead end w7, and further along it.
ON_W7 = (7.0025, 48.0)
END_W7 = (7.0029, 48.0)


@pytest.fixture
def block(network_db: Callable[[Path | str], str]) -> tuple[RoutingService, TestClient]:
    url = network_db(OPL)
    build_graphs(url, quiet=True, profiles=["car"])
    service = RoutingService(url, RoutingSettings(routing_small_component=5))
    return service, TestClient(Starlette(routes=routes(service)))


def _coords(*points: tuple[float, float]) -> str:
    return ";".join(f"{lon!r},{lat!r}" for lon, lat in points)


def test_the_trap_is_a_small_part_of_the_turn_graph(
    block: tuple[RoutingService, TestClient],
) -> None:
    service, _ = block
    engine = service.engine("car")
    (trap,) = engine.snap(*NEAR_J, radius=1)
    assert engine.edges[trap.edge]["way_id"] == 1 and trap.fraction > 0.999
    # From the trap no road leads on: the turn graph has no arc out of it.
    assert engine.small(trap) and not engine.successors[trap.edge]
    (dead_end,) = engine.snap(*ON_W7, radius=1)
    assert engine.edges[dead_end.edge]["way_id"] == 7 and engine.small(dead_end)
    (street,) = engine.snap(*ON_W6, radius=1)
    assert not engine.small(street)
    assert not engine.components(trap) & engine.components(street)


@pytest.mark.parametrize("trap", [NEAR_J, ON_W7])
def test_a_point_by_a_trap_snaps_where_it_routes(
    block: tuple[RoutingService, TestClient], trap: tuple[float, float]
) -> None:
    _, client = block
    for points in ((trap, ON_W6), (ON_W6, trap)):
        answer = client.get(f"/route/v1/driving/{_coords(*points)}")
        assert answer.status_code == 200, answer.text
        data = answer.json()
        index = points.index(trap)
        waypoint = data["waypoints"][index]
        # The nearest road the route can leave and reach: a few centimetres from J, or the
        # block at n3 (100 m from the dead end's middle).
        assert waypoint["distance"] < (0.05 if trap == NEAR_J else 40.0)
        assert waypoint["name"] == "" and data["routes"][0]["distance"] > 0
    # /table likewise finds every pair.
    table = client.get(f"/table/v1/driving/{_coords(trap, ON_W6)}").json()
    assert table["code"] == "Ok"
    assert all(cell is not None for row in table["durations"] for cell in row)


def test_points_on_the_same_one_way_dead_end(block: tuple[RoutingService, TestClient]) -> None:
    service, client = block
    engine = service.engine("car")
    along, back = [engine.snap(*point, radius=1)[0] for point in (ON_W7, END_W7)]
    # One part of the turn graph, but a lone one-way edge: the first point can't reach the
    # second if it lies behind it.
    assert engine.components(along) == engine.components(back)
    assert not engine.connected([along, back])
    for points in ((ON_W7, END_W7), (END_W7, ON_W7)):
        answer = client.get(f"/route/v1/driving/{_coords(*points)}")
        assert answer.status_code == 200, answer.text
        # Both moved onto the block by n3, where each reaches the other.
        distances = [waypoint["distance"] for waypoint in answer.json()["waypoints"]]
        assert distances == pytest.approx([37.2, 67.0], abs=1.0) or distances == pytest.approx(
            [67.0, 37.2], abs=1.0
        )


def test_random_pairs_on_the_main_network_all_route(
    service: RoutingService, engines: dict[str, Engine], routing_liechtenstein_url: str
) -> None:
    # Points near roads of the large parts: every pair has a route, whatever trap (one-way
    # dead end, restricted exits, private driveway) lies nearest to it.
    rng = random.Random(3)
    for profile in ("car", "bike", "foot"):
        engine = engines[profile]
        large = [e for e in range(len(engine.edges)) if not engine.edge_small[e]]
        failures = []
        for _ in range(200 if profile == "car" else 50):
            points = []
            for _ in range(2):
                lon, lat = engine.edges[rng.choice(large)]["geometry"][0]
                points.append((lon + rng.uniform(-4e-4, 4e-4), lat + rng.uniform(-3e-4, 3e-4)))
            try:
                service.route(profile, points, {"overview": "false"})
            except OsrmError as exc:
                failures.append((points, repr(exc)))
        assert not failures, failures[:5]


def test_random_points_on_a_cut_extract_all_route(
    network_db: Callable[[Path | str], str],
) -> None:
    # A bbox cut of a town centre: one-way streets cut at its edge are traps everywhere, and
    # no part reaches the small-component size; the largest part counts as the main network.
    url = network_db(ROOT / "data" / "sample" / "mulhouse-centre.osm.pbf")
    build_graphs(url, quiet=True)
    service = RoutingService(url)
    rng = random.Random(2)
    for profile in ("car", "bike", "foot"):
        points = service.engine(profile).points
        (west, south), (east, north) = points.min(axis=0), points.max(axis=0)
        failures = []
        for _ in range(250):
            pair = [(rng.uniform(west, east), rng.uniform(south, north)) for _ in range(2)]
            try:
                service.route(profile, pair, {"overview": "false"})
            except OsrmError as exc:
                failures.append((pair, exc.code))
        # Before snapping used the turn graph: 54, 31 and 20 of 250 were NoRoute.
        assert not failures, (profile, failures[:5])

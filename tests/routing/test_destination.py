"""``destination`` access as OSRM: start or end on such a street, never pass through it."""

from __future__ import annotations

import random
from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest

from routing.build import build_graphs, load_graph
from routing.engine import Engine
from routing.profiles import MAX_TURN_SECONDS, PROFILES
from tests.routing.conftest import load_network

#: The access tags of the middle block of each test street, and the profiles that go round it.
VARIANTS = [
    ("motor_vehicle=destination", {"car"}),
    ("access=destination", {"car", "bike", "foot"}),
    ("vehicle=destination", {"car", "bike"}),
    ("motorcar=destination", {"car"}),
    ("access=delivery;destination", {"car", "bike", "foot"}),
    ("bicycle=destination", {"bike"}),
    ("foot=destination", {"foot"}),
    # car.lua: private, delivery, customers... restrict cars (bikes and feet are shut out).
    ("motor_vehicle=private", {"car"}),
    ("motor_vehicle=customers", {"car"}),
]


def _street(i: int, middle: str) -> str:
    """Street ``i``: east along 48.00i N from n1 to n4 (ids 10 i + 1...), its middle block
    (w2, n2-n3) signed ``middle`` ("Anlieger frei"); w4 goes round it to the north, about
    twice as long."""
    lat = 48.0 + 0.01 * i
    n = [10 * i + k for k in range(7)]
    return (
        f"n{n[1]} v1 x7.000 y{lat:.3f}\n"
        f"n{n[2]} v1 x7.002 y{lat:.3f}\n"
        f"n{n[3]} v1 x7.004 y{lat:.3f}\n"
        f"n{n[4]} v1 x7.006 y{lat:.3f}\n"
        f"n{n[5]} v1 x7.002 y{lat + 0.003:.3f}\n"
        f"n{n[6]} v1 x7.004 y{lat + 0.003:.3f}\n"
        f"w{n[1]} v1 Thighway=residential Nn{n[1]},n{n[2]}\n"
        f"w{n[2]} v1 Thighway=residential,{middle} Nn{n[2]},n{n[3]}\n"
        f"w{n[3]} v1 Thighway=residential Nn{n[3]},n{n[4]}\n"
        f"w{n[4]} v1 Thighway=residential Nn{n[2]},n{n[5]},n{n[6]},n{n[3]}\n"
    )


@pytest.fixture(scope="module")
def streets(make_database: Callable[[], str]) -> dict[str, Engine]:
    """Every variant's street in one network (each its own island), the engine per profile."""
    url = make_database()
    # A private driveway south from street 0's n2.
    driveway = "n900 v1 x7.002 y47.999\nw900 v1 Thighway=service,access=private Nn2,n900\n"
    streets = "".join(_street(i, middle) for i, (middle, _) in enumerate(VARIANTS))
    load_network(url, streets + driveway)
    build_graphs(url, quiet=True)
    return {name: Engine(load_graph(url, name), small_component_size=1) for name in PROFILES}


def _ways(engine: Engine, start: tuple[float, float], end: tuple[float, float]) -> list[int]:
    path = engine.route(engine.snap(*start, radius=50)[0], engine.snap(*end, radius=50)[0])
    assert path is not None
    found: list[int] = []
    for part in path.parts:
        way = engine.edges[part.edge]["way_id"] % 10
        if not found or found[-1] != way:
            found.append(way)
    return found


def _places(i: int) -> tuple[tuple[float, float], ...]:
    """West of the block, east of it and on it, on street ``i``."""
    lat = 48.0 + 0.01 * i
    return (7.0005, lat), (7.0055, lat), (7.003, lat + 0.0001)


@pytest.mark.parametrize(("i", "middle", "around"), [(i, *v) for i, v in enumerate(VARIANTS)])
def test_no_through_route(
    streets: dict[str, Engine], i: int, middle: str, around: set[str]
) -> None:
    west, east, on_block = _places(i)
    for name, engine in streets.items():
        through = _ways(engine, west, east)
        assert through == ([1, 4, 3] if name in around else [1, 2, 3]), name
        # A route starting or ending on the street still uses it.
        assert _ways(engine, west, on_block) == [1, 2], name
        assert _ways(engine, on_block, east) == [2, 3], name
        block = [e for e, d in enumerate(engine.edges) if d["way_id"] == 10 * i + 2]
        assert bool(engine.restricted[block].all()) == (name in around), name


def test_durations_stay_real(streets: dict[str, Engine]) -> None:
    car = streets["car"]
    west, _, on_block = _places(0)
    start, end = car.snap(*west, radius=50)[0], car.snap(*on_block, radius=50)[0]
    path = car.route(start, end)
    assert path is not None
    travel = sum(
        float(car.edges[part.edge]["travel_time"]) * (part.end - part.start) for part in path.parts
    )
    # The weight carries the penalty for entering the street, the duration does not.
    assert path.weight == pytest.approx(1000 * (travel + MAX_TURN_SECONDS), abs=1000)
    assert car.duration(path) == pytest.approx(travel, abs=1.0)
    (row,) = car.durations([start], [end])
    assert row[0] == pytest.approx(car.duration(path), abs=0.01)
    # Straight along the street: it is the only way in.
    assert car.length(path) == pytest.approx(0.0025 * 74_490, rel=0.01)


def _through(engine: Engine, edges: list[int]) -> tuple[int, int] | None:
    """The first and last open edges of a path over ``edges`` when it passes through a
    restricted stretch between them (rather than only starting or ending in one)."""
    flags = engine.restricted[edges].tolist()
    first = flags.index(False) if False in flags else len(flags)
    last = len(flags) - 1 - flags[::-1].index(False) if False in flags else -1
    if any(flags[first : last + 1]):
        return edges[first], edges[last]
    return None


def test_liechtenstein_routes_enter_destination_streets_only_to_end_there(
    engines: dict[str, Engine],
) -> None:
    car = engines["car"]
    # The reference: the turn graph without the restricted roads (networkx).
    open_graph = car.turn_graph()
    open_graph.remove_nodes_from(np.flatnonzero(car.restricted[car._origin]).tolist())
    rng = random.Random(7)
    open_edges = np.flatnonzero(~car.restricted & ~car.edge_small)
    # Ends next to restricted streets, where going through them would be tempting.
    near = [int(e) for e in open_edges if car.restricted[car.leaving[car.head[int(e)]]].any()]
    ending = 0
    pairs = []
    for _ in range(300):
        snaps = []
        for pool in (near, open_edges):
            lon, lat = car.edges[int(rng.choice(pool))]["geometry"][0]
            snaps.append(car.snap(lon, lat, radius=None)[0])
        rng.shuffle(snaps)
        path = car.route(snaps[0], snaps[1])
        assert path is not None
        through = _through(car, path.edges.tolist())
        # Through a restricted street only where nothing else leads on (e.g. a street
        # reached only through one).
        assert through is None or not nx.has_path(open_graph, *through), (snaps, path)
        ending += bool(car.restricted[path.edges].any())
        pairs.append((snaps[0], snaps[1]))
    # Liechtenstein has 185 restricted car edges: many of these routes start or end there.
    assert ending > 20
    # A table's durations are the routes' real durations, penalties or not.
    starts, ends = [a for a, _ in pairs[:12]], [b for _, b in pairs[:12]]
    for start, row in zip(starts, car.durations(starts, ends), strict=True):
        for end, seconds in zip(ends, row, strict=True):
            path = car.route(start, end)
            assert path is not None and seconds is not None
            assert seconds == pytest.approx(car.duration(path), abs=5e-4 * len(path.edges) + 1e-3)


def test_no_route_starts_on_a_private_driveway(streets: dict[str, Engine]) -> None:
    car = streets["car"]
    # car.lua: a private service road is no start point; the street it leaves from is.
    (snap,) = car.snap(7.002, 47.9995, radius=100)
    assert car.edges[snap.edge]["way_id"] in {1, 2}
    assert snap.distance == pytest.approx(0.0005 * 111_200, rel=0.01)
    # OSRM's snapping=any: onto any road.
    (anywhere,) = car.snap(7.002, 47.9995, radius=100, any_edge=True)
    assert car.edges[anywhere.edge]["way_id"] == 900 and anywhere.distance < 0.01

"""The compiled kernels against independent references on the Liechtenstein car graph."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely

from routing import kernels, polyline
from routing.engine import Engine, Route
from routing.guidance import stretch
from routing.network import EARTH_RADIUS


def random_paths(engine: Engine, count: int) -> list[Route]:
    """Routes between random road positions (partial first and last edges)."""
    rng = random.Random(3)
    nodes = [(d["x"], d["y"]) for _, d in engine.graph.nodes(data=True)]
    found: list[Route] = []
    while len(found) < count:
        (lon1, lat1), (lon2, lat2) = rng.choice(nodes), rng.choice(nodes)
        start = engine.snap(lon1 + 0.0004, lat1 - 0.0003, radius=None)
        end = engine.snap(lon2 - 0.0003, lat2 + 0.0004, radius=None)
        path = engine.route(start[0], end[0])
        if path is not None:
            found.append(path)
    return found


def test_route_line_is_the_stretches_joined(engines: dict[str, Engine]) -> None:
    car = engines["car"]
    for path in random_paths(car, 60):
        expected: list[tuple[float, float]] = []
        for part in path.parts:
            for point in stretch(car, part).coords:
                if not expected or tuple(point) != expected[-1]:
                    expected.append((float(point[0]), float(point[1])))
        if len(expected) == 1:
            expected.append(expected[0])
        line = car.line(path)
        assert line.shape == (len(expected), 2)
        assert np.allclose(line, np.asarray(expected), rtol=0, atol=1e-9)


def test_simplify_keeps_what_geos_keeps(engines: dict[str, Engine]) -> None:
    car = engines["car"]
    for path in random_paths(car, 60):
        line = car.line(path)
        for tolerance in (0.00005, 0.0005):
            ours = kernels.simplify(line, tolerance)
            geos = shapely.get_coordinates(
                shapely.simplify(shapely.linestrings(line), tolerance, preserve_topology=False)
            )
            assert np.array_equal(ours, geos)


def test_polyline_of_the_format_description_and_round_trip(engines: dict[str, Engine]) -> None:
    # The example of Google's description of the format.
    assert polyline.encode([(-120.2, 38.5), (-120.95, 40.7), (-126.453, 43.252)]) == (
        "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    )
    assert polyline.encode([]) == ""
    for path in random_paths(engines["car"], 20):
        line = engines["car"].line(path)
        for precision in (5, 6):
            decoded = np.asarray(polyline.decode(polyline.encode(line, precision), precision))
            assert np.abs(decoded - line).max() <= 0.5 / 10**precision + 1e-12


def test_nearest_piece_is_the_brute_force_nearest(engines: dict[str, Engine]) -> None:
    car = engines["car"]
    pieces = car._piece_xy
    x0, y0, x1, y1 = pieces.T
    rng = random.Random(5)
    lons, lats = car.points[:, 0], car.points[:, 1]
    for i in range(300):
        # Inside the network's box and up to 20 km around it.
        lon = rng.uniform(lons.min() - 0.2, lons.max() + 0.2)
        lat = rng.uniform(lats.min() - 0.2, lats.max() + 0.2)
        x = math.radians(lon) * EARTH_RADIUS * car._cos
        y = math.radians(lat) * EARTH_RADIUS
        allowed = car._piece_large if i % 2 else car._piece_allowed
        dx, dy = x1 - x0, y1 - y0
        norm = dx * dx + dy * dy
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / np.where(norm > 0, norm, 1.0), 0.0, 1.0)
        gap = np.hypot(x0 + t * dx - x, y0 + t * dy - y)
        gap[~allowed] = np.inf
        reach = rng.choice([math.inf, 500.0, 5000.0])
        left, bottom, columns, rows, starts, members = car._grid
        piece, along, distance = kernels.nearest_piece(
            x, y, pieces, allowed, left, bottom, car._cell, columns, rows, starts, members, reach
        )
        best = int(np.argmin(gap))
        if gap[best] > reach:
            assert piece == -1
            continue
        assert distance == pytest.approx(gap[best], abs=1e-6)
        assert gap[piece] == pytest.approx(gap[best], abs=1e-6)
        assert along == pytest.approx(t[piece], abs=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_grid_with_moved_pieces_is_the_grid_built_again(seed: int) -> None:
    """Pieces moved a little, a few across cells, some to cells others left empty: the cell
    lists changed in place equal those built again, byte for byte."""
    rng = np.random.default_rng(seed)
    count = 3000
    start = rng.uniform(0.0, 1000.0, size=(count, 2))
    boxes = np.hstack([start, start + rng.uniform(-15.0, 15.0, size=(count, 2))])
    # The frame's corners stay put: the moved pieces lie inside.
    boxes[0] = [-100.0, -100.0, -99.0, -99.0]
    boxes[1] = [1200.0, 1200.0, 1201.0, 1201.0]
    cell = 20.0
    left, bottom, columns, rows, starts, members = kernels.build_grid(boxes, cell)
    pieces = np.sort(rng.choice(np.arange(2, count), size=200, replace=False))
    moved = boxes.copy()
    moved[pieces] += rng.uniform(-30.0, 30.0, size=(len(pieces), 1))
    # Some pieces jump far (empty cells filled, full ones emptied), some stay.
    moved[pieces[:10]] = moved[pieces[:10]] % 300.0 + 700.0
    moved[pieces[-5:]] = boxes[pieces[-5:]]
    frame = (left, bottom, columns, rows, cell)
    made = kernels.regrid(starts, members, frame, pieces, boxes[pieces], moved[pieces])
    assert made is not None
    fresh = kernels.build_grid(moved, cell)
    assert fresh[:4] == (left, bottom, columns, rows)
    assert made[0].dtype == fresh[4].dtype and made[1].dtype == fresh[5].dtype
    assert made[0].tobytes() == fresh[4].tobytes()
    assert made[1].tobytes() == fresh[5].tobytes()
    # Nothing moved across cells: the lists as they were.
    same = kernels.regrid(starts, members, frame, pieces, boxes[pieces], boxes[pieces])
    assert same is not None and same[0] is starts and same[1] is members
    # Lists that do not hold the pieces where they were: not changed.
    assert kernels.regrid(starts, members, frame, pieces, moved[pieces], boxes[pieces]) is None

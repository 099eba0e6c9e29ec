"""The OSRM v5 HTTP API: field types, geometries, errors, routingpy against a live uvicorn."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from routingpy import OSRM
from starlette.applications import Starlette

from routing.http import routes
from routing.network import haversine
from routing.polyline import decode
from routing.service import RoutingService

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

VADUZ = "9.5209,47.1410"
SCHAAN = "9.5095,47.1650"
BALZERS = "9.4980,47.0650"


def test_route_fields(client: TestClient) -> None:
    answer = client.get(
        f"/route/v1/driving/{VADUZ};{SCHAAN}",
        params={"steps": "true", "annotations": "true", "overview": "full", "alternatives": "2"},
    )
    assert answer.status_code == 200
    data = answer.json()
    assert data["code"] == "Ok"
    assert 1 <= len(data["routes"]) <= 3
    route = data["routes"][0]
    assert isinstance(route["geometry"], str)
    assert isinstance(route["distance"], float) and isinstance(route["duration"], float)
    assert route["weight_name"] == "duration"
    (leg,) = route["legs"]
    assert isinstance(leg["summary"], str)
    assert leg["steps"][0]["maneuver"]["type"] == "depart"
    assert leg["steps"][-1]["maneuver"]["type"] == "arrive"
    for step in leg["steps"]:
        maneuver = step["maneuver"]
        assert isinstance(maneuver["bearing_before"], int)
        assert isinstance(maneuver["bearing_after"], int)
        assert len(maneuver["location"]) == 2
        assert isinstance(step["name"], str) and step["mode"] in {"driving", "ferry"}
    names = {step["name"] for step in leg["steps"]}
    assert "Landstrasse" in names or "Zollstrasse" in names
    assert sum(step["distance"] for step in leg["steps"]) == pytest.approx(leg["distance"], abs=2)
    annotation = leg["annotation"]
    assert len(annotation["distance"]) == len(annotation["duration"]) == len(annotation["speed"])
    assert sum(annotation["distance"]) == pytest.approx(leg["distance"], rel=0.01)
    assert all(isinstance(node, int) for node in annotation["nodes"])
    for waypoint in data["waypoints"]:
        assert isinstance(waypoint["hint"], str) and isinstance(waypoint["name"], str)
        assert isinstance(waypoint["distance"], float)
    # Full geometry starts and ends at the snapped waypoints.
    coords = decode(route["geometry"])
    assert coords[0] == pytest.approx(tuple(data["waypoints"][0]["location"]), abs=1e-5)
    assert coords[-1] == pytest.approx(tuple(data["waypoints"][1]["location"]), abs=1e-5)
    for other in data["routes"][1:]:
        assert other["duration"] >= route["duration"]


def test_geometry_formats_agree(client: TestClient) -> None:
    shapes = {}
    for kind in ("polyline", "polyline6", "geojson"):
        data = client.get(
            f"/route/v1/bike/{VADUZ};{SCHAAN}", params={"geometries": kind, "overview": "full"}
        ).json()
        geometry = data["routes"][0]["geometry"]
        if kind == "geojson":
            shapes[kind] = [tuple(point) for point in geometry["coordinates"]]
        else:
            shapes[kind] = decode(geometry, 6 if kind == "polyline6" else 5)
    assert len(shapes["polyline6"]) == len(shapes["geojson"]) == len(shapes["polyline"])
    for a, b in zip(shapes["polyline6"], shapes["geojson"], strict=True):
        assert a == pytest.approx(b, abs=1.5e-6)
    simplified = client.get(f"/route/v1/bike/{VADUZ};{SCHAAN}").json()["routes"][0]
    assert len(decode(simplified["geometry"])) < len(shapes["polyline"])
    bare = client.get(f"/route/v1/bike/{VADUZ};{SCHAAN}", params={"overview": "false"}).json()
    assert "geometry" not in bare["routes"][0]


def test_nearest_and_radiuses(client: TestClient) -> None:
    data = client.get(f"/nearest/v1/foot/{VADUZ}", params={"number": "3"}).json()
    assert data["code"] == "Ok" and len(data["waypoints"]) == 3
    distances = [w["distance"] for w in data["waypoints"]]
    assert distances == sorted(distances)
    for w in data["waypoints"]:
        lon, lat = w["location"]
        assert w["distance"] == pytest.approx(haversine(9.5209, 47.1410, lon, lat), abs=0.2)
        assert all(isinstance(node, int) for node in w["nodes"])
    # 400 m from the nearest road in the mountains above Balzers.
    remote = "9.5554,47.0600"
    answer = client.get(f"/nearest/v1/car/{remote}", params={"radiuses": "50"})
    assert answer.status_code == 400 and answer.json()["code"] == "NoSegment"
    unlimited = client.get(f"/nearest/v1/car/{remote}", params={"radiuses": "unlimited"}).json()
    assert unlimited["waypoints"][0]["distance"] > 50


def test_table(client: TestClient) -> None:
    data = client.get(
        f"/table/v1/car/{VADUZ};{SCHAAN};{BALZERS}",
        params={"sources": "0", "destinations": "1;2", "annotations": "duration,distance"},
    ).json()
    assert data["code"] == "Ok"
    assert len(data["durations"]) == 1 and len(data["durations"][0]) == 2
    for j, coords in enumerate((SCHAAN, BALZERS)):
        route = client.get(f"/route/v1/car/{VADUZ};{coords}").json()["routes"][0]
        assert data["durations"][0][j] == pytest.approx(route["duration"], abs=0.2)
        assert data["distances"][0][j] == pytest.approx(route["distance"], abs=0.2)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/route/v1/plane/9.52,47.14;9.51,47.16", "InvalidUrl"),
        ("/route/v1/car/9.52,47.14;9.51", "InvalidUrl"),
        ("/route/v1/car/9.52,47.14;abc,47.16", "InvalidUrl"),
        ("/route/v1/car/9.52,47.14;9.51,97.16", "InvalidValue"),
        ("/route/v1/car/9.52,47.14;9.51,47.16?geometries=kml", "InvalidQuery"),
        ("/route/v1/car/9.52,47.14;9.51,47.16?unknown=1", "InvalidQuery"),
        ("/route/v1/car/9.52,47.14;9.51,47.16?radiuses=10", "InvalidOptions"),
        ("/route/v1/car/9.52,47.14;2.35,48.85", "NoSegment"),
        ("/route/v1/car/" + ";".join(["9.52,47.14"] * 6), "TooBig"),
        ("/route/v1/car/9.52,47.14", "InvalidOptions"),
        ("/table/v1/car/9.52,47.14;9.51,47.16?sources=5", "InvalidOptions"),
        ("/nearest/v1/car/9.52,47.14?number=x", "InvalidQuery"),
        # What OSRM's grammar can't parse is InvalidQuery, what it parses but rejects
        # (counts, ranges, speeds not above 0) is InvalidOptions.
        (f"/route/v1/car/{VADUZ};{SCHAAN}?approaches=curb;foo", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?approaches=curb", "InvalidOptions"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?snapping=x", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?bearings=90.5,10;", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?bearings=90;", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?bearings=400,10;", "InvalidOptions"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?bearings=90,200;", "InvalidOptions"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?radiuses=nan;10", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?radiuses=1e999999;10", "InvalidValue"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?hints=a%25b;", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?hints=", "InvalidOptions"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?exclude=", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?exclude=toll;ferry", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?exclude=toll", "InvalidValue"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?annotations=duration,foo", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?annotations=", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?alternatives=-1", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?alternatives=%C2%B2", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?continue_straight=maybe", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?steps=1", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?generate_hints=yes", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?skip_waypoints=no", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?overview=some", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?waypoints=x", "InvalidQuery"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?waypoints=0;5", "InvalidOptions"),
        (f"/route/v1/car/{VADUZ};{SCHAAN}?waypoints=1", "InvalidValue"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?fallback_speed=-1", "InvalidOptions"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?fallback_speed=0", "InvalidOptions"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?fallback_speed=inf", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?fallback_speed=fast", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?scale_factor=0", "InvalidOptions"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?scale_factor=-2", "InvalidOptions"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?fallback_coordinate=foo", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?annotations=true", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?sources=a", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?destinations=0;9", "InvalidOptions"),
        (f"/table/v1/car/{VADUZ};{SCHAAN}?steps=true", "InvalidQuery"),
        (f"/table/v1/car/{VADUZ}", "InvalidOptions"),
        (f"/nearest/v1/car/{VADUZ}?number=0", "InvalidOptions"),
        (f"/nearest/v1/car/{VADUZ}?bearings=10,10;", "InvalidOptions"),
    ],
)
def test_errors(client: TestClient, path: str, code: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]


def test_valid_options_osrm_accepts(client: TestClient) -> None:
    first = client.get(f"/route/v1/driving/{VADUZ};{SCHAAN}").json()
    hints = ";".join(waypoint["hint"] for waypoint in first["waypoints"])
    answer = client.get(
        f"/route/v1/driving/{VADUZ};{SCHAAN}",
        params={
            "approaches": "curb;",
            "snapping": "any",
            "hints": hints,
            "bearings": ";",
            "radiuses": "unlimited;",
            "waypoints": "0;1",
            "annotations": "speed,duration",
            "alternatives": "0",
        },
    )
    assert answer.status_code == 200, answer.text
    route = answer.json()["routes"][0]
    assert route["distance"] == first["routes"][0]["distance"]
    assert set(route["legs"][0]["annotation"]) == {"speed", "duration"}


def test_overview_by_legs(client: TestClient) -> None:
    answer = client.get(
        f"/route/v1/driving/{VADUZ};{SCHAAN};{VADUZ}",
        params={"overview": "by_legs", "geometries": "geojson"},
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    route = data["routes"][0]
    # OSRM: no overview of the whole route, a full geometry in each leg.
    assert "geometry" not in route
    for leg, start, end in zip(
        route["legs"], data["waypoints"][:-1], data["waypoints"][1:], strict=True
    ):
        line = leg["geometry"]["coordinates"]
        assert line[0] == pytest.approx(start["location"], abs=1e-6)
        assert line[-1] == pytest.approx(end["location"], abs=1e-6)
        length = sum(haversine(*a, *b) for a, b in zip(line, line[1:], strict=False))
        assert length == pytest.approx(leg["distance"], rel=0.01)


def test_table_scale_factor_and_fallback_speed(client: TestClient, engines: dict[str, Any]) -> None:
    plain = client.get(f"/table/v1/driving/{VADUZ};{SCHAAN}").json()["durations"]
    scaled = client.get(f"/table/v1/driving/{VADUZ};{SCHAAN}?scale_factor=2").json()["durations"]
    assert plain[0][1] > 60
    assert scaled[0][1] == pytest.approx(2 * plain[0][1], abs=0.2)
    assert scaled[1][1] == plain[1][1] == 0
    # A pair without a route: estimated from the straight line at 10 m/s.
    lon, lat = _island(engines["car"])
    query = {"radiuses": "unlimited;1", "sources": "0", "destinations": "1"}
    table = client.get(f"/table/v1/driving/{VADUZ};{lon},{lat}", params=query).json()
    assert table["durations"] == [[None]] and "fallback_speed_cells" not in table
    query.update(fallback_speed="10", annotations="duration,distance", scale_factor="1.5")
    table = client.get(f"/table/v1/driving/{VADUZ};{lon},{lat}", params=query).json()
    metres = haversine(*map(float, VADUZ.split(",")), lon, lat)
    assert table["fallback_speed_cells"] == [[0, 0]]
    assert table["distances"][0][0] == pytest.approx(metres, abs=0.1)
    assert table["durations"][0][0] == pytest.approx(1.5 * metres / 10, abs=0.2)


def test_nearest_bearing(client: TestClient, engines: dict[str, Any]) -> None:
    lon, lat = map(float, VADUZ.split(","))
    plain = client.get(f"/nearest/v1/driving/{VADUZ}").json()["waypoints"][0]["location"]
    moved = 0
    for heading in (0, 90, 180, 270):
        expected = engines["car"].snap(lon, lat, radius=5000, bearing=(heading, 20))
        answer = client.get(f"/nearest/v1/driving/{VADUZ}", params={"bearings": f"{heading},20"})
        assert answer.status_code == 200, answer.text
        location = answer.json()["waypoints"][0]["location"]
        assert location == [round(expected[0].lon, 6), round(expected[0].lat, 6)]
        moved += location != plain
    assert moved


def _island(engine: Any) -> tuple[float, float]:
    """A node of the smallest strongly connected part of the car graph, far from the rest."""
    import networkx as nx

    graph = engine.graph
    main = max(nx.strongly_connected_components(graph), key=len)
    for part in sorted(nx.weakly_connected_components(graph), key=len):
        node = next(iter(part))
        lon, lat = graph.nodes[node]["x"], graph.nodes[node]["y"]
        if not (part & main) and not engine.snap(lon, lat, radius=1.0, large_only=True):
            return float(lon), float(lat)
    raise AssertionError("the car graph has no small part apart from the rest")


def test_small_part_is_left_for_the_main_network(
    client: TestClient, engines: dict[str, Any]
) -> None:
    # OSRM's rule: a coordinate nearest to a small disconnected road (a lone driveway) is
    # snapped onto the main network instead, so that the route exists.
    car = engines["car"]
    lon, lat = _island(car)
    answer = client.get(f"/route/v1/car/{VADUZ};{lon},{lat}")
    assert answer.status_code == 200, answer.text
    waypoint = answer.json()["waypoints"][1]
    nearest = car.snap(lon, lat, radius=None)[0]
    large = car.snap(lon, lat, radius=None, large_only=True)[0]
    assert car.small(nearest) and not car.small(large)
    assert waypoint["distance"] == pytest.approx(large.distance, abs=0.01)
    assert waypoint["location"] == [round(large.lon, 6), round(large.lat, 6)]
    # Both ends on the same small part: routed on it.
    same = client.get(f"/route/v1/car/{lon},{lat};{nearest.lon + 1e-6},{nearest.lat}")
    assert same.status_code == 200
    assert same.json()["waypoints"][1]["distance"] < 1.0


def test_unreachable_pair_is_no_route(client: TestClient, engines: dict[str, Any]) -> None:
    # A radius that only the small part lies within leaves nothing to route on.
    lon, lat = _island(engines["car"])
    answer = client.get(f"/route/v1/car/{VADUZ};{lon},{lat}", params={"radiuses": "unlimited;1"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "NoRoute"


@pytest.fixture(scope="module")
def live_url(service: RoutingService) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(Starlette(routes=routes(service)), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_routingpy_directions_and_matrix(live_url: str, client: TestClient) -> None:
    api = OSRM(base_url=live_url)
    locations = [[9.5209, 47.1410], [9.5095, 47.1650], [9.4980, 47.0650]]
    direction = api.directions(locations=locations[:2], profile="driving", overview="full")
    expected = client.get(f"/route/v1/driving/{VADUZ};{SCHAAN}", params={"overview": "full"})
    route = expected.json()["routes"][0]
    assert direction.distance == pytest.approx(route["distance"], abs=1)
    assert direction.duration == pytest.approx(route["duration"], abs=1)
    assert len(direction.geometry) == len(decode(route["geometry"]))
    matrix = api.matrix(
        locations=locations, profile="driving", annotations=["duration", "distance"]
    )
    table = client.get(
        f"/table/v1/driving/{VADUZ};{SCHAAN};{BALZERS}", params={"annotations": "duration,distance"}
    ).json()
    assert matrix.durations == table["durations"]
    assert matrix.distances == table["distances"]

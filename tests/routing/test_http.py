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
    ],
)
def test_errors(client: TestClient, path: str, code: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]


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

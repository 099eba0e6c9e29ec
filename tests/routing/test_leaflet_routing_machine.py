"""Leaflet Routing Machine (npm) in headless Chromium against fondplan's OSRM API."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from routing.polyline import decode
from tests.conftest import ROOT, run_json
from tests.tileserver.test_viewer import CHROMIUM, server

__all__ = ["server"]

pytestmark = pytest.mark.browser

DRIVER = Path(__file__).with_name("lrm_check.mjs")
NODE_MODULES = ROOT / "node_modules"

#: A page as a Leaflet user writes it: LRM's defaults, only the service URL set to fondplan's.
PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Leaflet Routing Machine on fondplan</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="leaflet/leaflet.css">
<link rel="stylesheet" href="lrm/leaflet-routing-machine.css">
<style>html, body, #map { margin: 0; height: 100%; }</style>
<script src="leaflet/leaflet.js"></script>
<script src="lrm/leaflet-routing-machine.js"></script>
</head>
<body>
<div id="map"></div>
<script>
const query = new URLSearchParams(location.search);
const waypoints = query.get("waypoints").split(";").map((p) => L.latLng(p.split(",").map(Number)));
const map = L.map("map").setView(waypoints[0], 13);
const control = L.Routing.control({
  router: L.Routing.osrmv1({ serviceUrl: query.get("service"), profile: query.get("profile") }),
  waypoints,
});
const events = [];
const record = (r) => ({
  name: r.name,
  summary: r.summary,
  coordinates: r.coordinates.map((c) => [c.lng, c.lat]),
  waypoints: r.waypoints.map((w) => [w.latLng.lng, w.latLng.lat]),
  instructions: r.instructions.map((i) => ({
    type: i.type, text: i.text, road: i.road, modifier: i.modifier ?? null,
    exit: i.exit ?? null, distance: i.distance, time: i.time, mode: i.mode,
  })),
});
const failure = (err) => ({
  kind: "routingerror",
  status: err.status,
  message: err.message,
  httpStatus: err.target?.status ?? null,
  body: err.target?.responseText ?? null,
});
control.on("routesfound", (e) => {
  events.push({ kind: "routesfound", routes: e.routes.map(record) });
});
control.on("routingerror", (e) => events.push(failure(e.error)));
// The request LRM makes while a waypoint is dragged (routeWhileDragging): geometry only.
const dragged = () => new Promise((resolve) => control.route({
  geometryOnly: true,
  callback: (err, routes) => {
    resolve(err ? failure(err) : { kind: "geometry", routes: routes.map(record) });
  },
}));
control.addTo(map);
window.lrm = { map, control, events, dragged };
</script>
</body>
</html>
"""

VADUZ = (47.1410, 9.5209)
SCHAAN = (47.1650, 9.5095)
EBENHOLZ = (47.1390, 9.5160)
MUEHLEHOLZ = (47.1290, 9.5230)
AT_SEA = (43.0, 5.0)

#: name → (profile, waypoints as (lat, lng), ask a second time)
CASES: dict[str, tuple[str, list[tuple[float, float]], bool]] = {
    "car": ("driving", [EBENHOLZ, SCHAAN], True),
    "foot": ("foot", [VADUZ, EBENHOLZ, MUEHLEHOLZ], True),
    "bike": ("cycling", [MUEHLEHOLZ, SCHAAN], True),
    "car-at-sea": ("driving", [VADUZ, AT_SEA], False),
    "foot-at-sea": ("foot", [AT_SEA, VADUZ], False),
}

ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page and the npm files it loads, served on an origin other than fondplan's."""
    root = tmp_path_factory.mktemp("lrm-page")
    (root / "index.html").write_text(PAGE, "utf-8")
    (root / "leaflet").symlink_to(NODE_MODULES / "leaflet" / "dist")
    (root / "lrm").symlink_to(NODE_MODULES / "leaflet-routing-machine" / "dist")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def report(routing_liechtenstein_url: str, server: str, page_url: str) -> dict[str, Any]:
    """What LRM did for every case, in one browser run."""
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.skip("needs /usr/bin/chromium and node (make setup)")
    for package in ("playwright-core", "leaflet", "leaflet-routing-machine"):
        if not (NODE_MODULES / package).is_dir():
            pytest.skip("needs the npm packages (make setup)")
    cases = [
        {
            "name": name,
            "service": server + "/route/v1",
            "profile": profile,
            "waypoints": [list(point) for point in points],
            "again": again,
        }
        for name, (profile, points, again) in CASES.items()
    ]
    data = run_json(["node", str(DRIVER), page_url, json.dumps(cases)])
    assert "error" not in data, data["error"]
    return data


def _coords(points: list[tuple[float, float]]) -> str:
    # repr() and JavaScript print the same shortest round-trip form of a float.
    return ";".join(f"{lng!r},{lat!r}" for lat, lng in points)


def _server_answer(server: str, profile: str, points: list[tuple[float, float]]) -> httpx.Response:
    """The server's own answer to the query LRM makes, asked over HTTP by the test."""
    return httpx.get(
        f"{server}/route/v1/{profile}/{_coords(points)}",
        params={"overview": "false", "alternatives": "true", "steps": "true"},
        timeout=60,
    )


def _rounded(points: Any, digits: int) -> list[tuple[float, float]]:
    return [(round(lon, digits), round(lat, digits)) for lon, lat in points]


def _route_requests(result: dict[str, Any], server: str) -> list[str]:
    return [url for url in result["requests"] if url.startswith(server + "/route/v1/")]


def _check_routes(name: str, report: dict[str, Any], server: str, page_url: str) -> None:
    profile, points, _ = CASES[name]
    result = report["cases"][name]
    origin = page_url.rsplit("/", 1)[0]
    # Nothing from elsewhere: not LRM's demo server, not a tile server.
    assert [u for u in result["requests"] if not u.startswith((origin, server))] == []
    assert result["console"] == []

    answer = _server_answer(server, profile, points)
    assert answer.status_code == 200
    body = answer.json()
    assert body["code"] == "Ok"

    # What LRM asked: lon,lat order, its default options, then the hints it kept; the last
    # request is the dragging one, asking for the full overview.
    first, second, dragging = _route_requests(result, server)
    for url, overview in ((first, "false"), (second, "false"), (dragging, "full")):
        parts = urlsplit(url)
        assert parts.path == f"/route/v1/{profile}/{_coords(points)}"
        query = parse_qs(parts.query, keep_blank_values=True)
        assert query["alternatives"] == ["true"] and query["steps"] == ["true"]
        assert query["overview"] == [overview]
    assert parse_qs(urlsplit(first).query, keep_blank_values=True)["hints"] == [
        ";" * (len(points) - 1)
    ]
    hints = ";".join(w["hint"] for w in body["waypoints"])
    assert parse_qs(urlsplit(second).query)["hints"] == [hints]
    assert parse_qs(urlsplit(dragging).query)["hints"] == [hints]

    events = result["events"]
    assert [e["kind"] for e in events] == ["routesfound", "routesfound"]
    assert events[0]["routes"] == events[1]["routes"]
    assert result["dragged"] == {"kind": "geometry", "routes": events[0]["routes"]}
    routes = events[0]["routes"]
    assert len(routes) == len(body["routes"])
    for shown, expected in zip(routes, body["routes"], strict=True):
        assert round(shown["summary"]["totalDistance"]) == round(expected["distance"])
        assert round(shown["summary"]["totalTime"]) == round(expected["duration"])
        steps = [step for leg in expected["legs"] for step in leg["steps"]]
        # One instruction per step: none dropped for an unknown maneuver.
        assert len(shown["instructions"]) == len(steps)
        for instruction, step in zip(shown["instructions"], steps, strict=True):
            maneuver = step["maneuver"]
            text = instruction["text"]
            assert instruction["type"] and instruction["type"] != "undefined", (step, instruction)
            assert text and "undefined" not in text and "null" not in text, (step, instruction)
            assert instruction["road"] == step["name"]
            assert instruction["distance"] == step["distance"]
            assert instruction["mode"] == step["mode"]
            if maneuver["type"] != "arrive":
                assert step["name"] in text, (step, instruction)
            if maneuver["type"] in {"roundabout", "rotary"} and maneuver.get("exit"):
                ordinal = ORDINALS.get(maneuver["exit"], f"{maneuver['exit']}th")
                assert f"take the {ordinal} exit" in text, (step, instruction)
            if maneuver["type"] == "arrive":
                assert text.startswith("You have arrived at your")
        # The line LRM draws is the steps' geometries put end to end.
        joined = [point for step in steps for point in decode(step["geometry"])]
        assert _rounded(shown["coordinates"], 5) == _rounded(joined, 5)
        assert _rounded(shown["waypoints"], 6) == _rounded(
            [w["location"] for w in body["waypoints"]], 6
        )

    # The itinerary LRM shows: one block per route, the first one open, our distances.
    itinerary = result["itinerary"]
    assert [alt["minimized"] for alt in itinerary] == [i > 0 for i in range(len(routes))]
    for alt, expected in zip(itinerary, body["routes"], strict=True):
        assert alt["summary"].startswith(f"{expected['distance'] / 1000:.1f} km, ")
    for alt, shown in zip(itinerary, routes, strict=True):
        assert [row["text"] for row in alt["rows"]] == [i["text"] for i in shown["instructions"]]
        assert all("undefined" not in row["distance"] for row in alt["rows"])
    assert result["drawnLines"] > 0


def test_car_route_in_leaflet_routing_machine(
    report: dict[str, Any], server: str, page_url: str
) -> None:
    _check_routes("car", report, server, page_url)
    texts = [i["text"] for i in report["cases"]["car"]["events"][0]["routes"][0]["instructions"]]
    assert any(text.startswith("Turn right onto ") for text in texts), texts
    # The bundled instruction texts say "traffic circle" in some releases.
    enter = re.compile(
        r"Enter the (roundabout|traffic circle) and take the \d+(st|nd|rd|th) exit onto "
    )
    assert any(enter.match(text) for text in texts), texts


def test_foot_route_with_a_via_point(report: dict[str, Any], server: str, page_url: str) -> None:
    _check_routes("foot", report, server, page_url)
    (route,) = report["cases"]["foot"]["events"][0]["routes"]
    types = [i["type"] for i in route["instructions"]]
    assert types.count("WaypointReached") == 1 and types[-1] == "DestinationReached"


def test_bike_route_under_osrm_profile_name(
    report: dict[str, Any], server: str, page_url: str
) -> None:
    _check_routes("bike", report, server, page_url)
    routes = report["cases"]["bike"]["events"][0]["routes"]
    modes = {i["mode"] for route in routes for i in route["instructions"]}
    assert "cycling" in modes and modes <= {"cycling", "pushing bike", "ferry"}


@pytest.mark.parametrize(("name", "index"), [("car-at-sea", 1), ("foot-at-sea", 0)])
def test_unroutable_point_gives_routingerror_with_our_code(
    report: dict[str, Any], server: str, name: str, index: int
) -> None:
    profile, points, _ = CASES[name]
    answer = _server_answer(server, profile, points)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "NoSegment"
    assert body["message"].endswith(f"coordinate {index}")
    result = report["cases"][name]
    (event,) = result["events"]
    assert event["kind"] == "routingerror"
    assert event["httpStatus"] == 400
    assert json.loads(event["body"]) == body
    assert event["message"].startswith("HTTP request failed")
    # LRM's own handler logs the error; the browser logs the failed request; nothing else.
    assert [m["type"] for m in result["console"]] == ["error", "error"]
    assert any(m["text"].startswith("Routing error:") for m in result["console"])
    assert result["itinerary"] == [] and result["drawnLines"] == 0

"""The routing panel of the viewer in headless Chromium, and the routes in the full server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.tileserver.conftest import tile_settings
from tests.tileserver.test_viewer import CHROMIUM, SCRIPT, server
from tileserver.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["server"]

STEPS = Path(__file__).with_name("viewer_routing_steps.mjs")


def test_create_app_mounts_the_osrm_api(routing_liechtenstein_url: str, tmp_path: Path) -> None:
    settings = tile_settings(routing_liechtenstein_url, tmp_path)
    with TestClient(create_app(settings)) as client:
        answer = client.get("/route/v1/driving/9.5209,47.1410;9.5095,47.1650")
        assert answer.status_code == 200
        body = answer.json()
        assert body["code"] == "Ok"
        assert body["routes"][0]["distance"] > 2000
        assert client.get("/nearest/v1/foot/9.5209,47.1410").json()["code"] == "Ok"
        bad = client.get("/route/v1/driving/9.5209,47.1410;abc")
        assert bad.status_code == 400
        assert bad.json()["code"] == "InvalidUrl"
        script = client.get("/routing/routing.js")
        assert script.status_code == 200
        assert "registerPanel" in script.text


def test_fast_path_answers_like_the_regular_route(
    routing_liechtenstein_url: str, tmp_path: Path
) -> None:
    from routing.http import answer, fast_answer
    from routing.service import RoutingService
    from routing.settings import RoutingSettings

    coordinates = "9.5209,47.1410;9.5095,47.1650"
    query = [("overview", "full"), ("steps", "true"), ("geometries", "geojson")]
    fresh = RoutingService(routing_liechtenstein_url, RoutingSettings(routing_reload_interval=3600))
    fresh.load()
    status, body = answer(fresh, "route", "driving", coordinates, query)
    assert status == 200 and len(body) > 1024
    path = f"/route/v1/driving/{coordinates}"
    text = "&".join(f"{k}={v}" for k, v in query)
    assert fast_answer(fresh, path, text) == (status, body)
    # A reload holding the service's lock in another thread never makes the event loop wait.
    with fresh._lock:
        assert fast_answer(fresh, path, text) == (status, body)
    # Past the reload interval the fast path steps aside: the regular route checks the version.
    stale = RoutingService(routing_liechtenstein_url, RoutingSettings(routing_reload_interval=0))
    stale.load()
    assert fast_answer(stale, path, text) is None
    with stale._lock:
        assert fast_answer(stale, path, text) is None
    # Alternatives (tens of searches) and long lists of coordinates go to the worker threads.
    assert fast_answer(fresh, path, "alternatives=2") is None
    assert fast_answer(fresh, path, "alternatives=false") is not None
    many = ";".join(["9.5209,47.1410"] * 11)
    assert fast_answer(fresh, f"/route/v1/driving/{many}", "") is None

    settings = tile_settings(routing_liechtenstein_url, tmp_path, cors_origins="https://a.example")
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.fast is not None
        prefixes = {route.prefix for route in app.fast.routes}
        assert prefixes == {"/route/v1/", "/nearest/v1/", "/tiles/basemap/"}
        # The engines load in a thread at start; meanwhile routes take the regular path.
        deadline = time.monotonic() + 120
        while client.get("/health").json()["status"] != "ok":
            assert time.monotonic() < deadline, "the routing data never loaded"
            time.sleep(0.1)
        headers = {"Origin": "https://a.example", "Accept-Encoding": "gzip"}
        got = client.get(path, params=dict(query), headers=headers)
        assert got.status_code == 200
        assert got.headers["content-encoding"] == "gzip"
        assert got.headers["access-control-allow-origin"] == "https://a.example"
        vary = {v.strip() for line in got.headers.get_list("vary") for v in line.split(",")}
        assert "Accept-Encoding" in vary
        assert got.json() == json.loads(body)
        other = client.get(path, headers={"Origin": "https://b.example"})
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(client.get(path).content)
        bad = client.get("/route/v1/driving/9.5,47.1;1e999,2")
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidUrl"
        metrics = client.get("/metrics").text
        for method in ("GET", "HEAD"):
            assert f'{{route="osrm_route",method="{method}",status="200"}}' in metrics


@pytest.mark.browser
def test_viewer_routing_panel_shows_each_profile(
    routing_liechtenstein_url: str, server: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.skip("needs /usr/bin/chromium and node (make setup)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.skip("needs the npm packages (make setup)")
    result = subprocess.run(
        ["node", str(SCRIPT), server + "/", str(tmp_path / "shot.png"), "", str(STEPS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in report, (report.get("error"), report.get("steps"))
    assert report["consoleErrors"] == []
    assert report["failedRequests"] == []
    steps = report["steps"]
    clicks = steps["clicks"]
    assert len(clicks) == 2
    coords = ";".join(f"{lon:.6f},{lat:.6f}" for lon, lat in clicks)
    for profile, shown in steps["profiles"].items():
        # What the server answers for the clicked points, asked independently of the page.
        answer = httpx.get(
            f"{server}/route/v1/{profile}/{coords}",
            params={"overview": "full", "geometries": "geojson", "steps": "true"},
        ).json()
        assert answer["code"] == "Ok", answer
        route = answer["routes"][0]
        assert shown["selected"] is True
        assert shown["error"] is None
        assert shown["distance"] == f"{route['distance'] / 1000:.2f} km"
        assert shown["duration"] and shown["duration"].endswith("min")
        expected = [s["maneuver"]["type"] for leg in route["legs"] for s in leg["steps"]]
        assert shown["steps"] == expected
        assert expected[0] == "depart" and expected[-1] == "arrive"
        assert shown["drawn"] > 0

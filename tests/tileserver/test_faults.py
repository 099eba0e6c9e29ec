"""Faults inside the test: the database stopped or hung; cached and static answers go on."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import mapbox_vector_tile
import psutil
import pytest

from osmimport.embedded import EmbeddedCluster
from osmimport.settings import DatabaseSettings
from tests.conftest import ROOT
from tests.tileserver.conftest import LOOPBACK, VADUZ, TestClient, render_settings, tile_of
from tileserver.app import create_app
from tileserver.settings import CacheSettings, ServerSettings, Settings, TileSettings

Served = tuple[TestClient, str, list[str]]
STATIC = [
    "/styles/colour.json",
    "/fonts/Noto Sans Regular/0-255.pbf",
    "/sprites/fondplan.json",
    "/tiles/basemap.json",
]


@pytest.fixture
def cluster() -> EmbeddedCluster:
    if os.environ.get("FONDPLAN_TEST_DATABASE_URL") or os.environ.get("FONDPLAN_DATABASE_URL"):
        pytest.skip("the fault tests stop the embedded PostGIS")
    return EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))


def fault_settings(url: str, cache_dir: Path) -> Settings:
    return Settings(
        database=DatabaseSettings(database_url=url),
        cache=CacheSettings(dir=cache_dir, version_ttl=1.0),
        server=ServerSettings(disable=frozenset({"raster", "routing"})),
        # Short bounds so the test is quick: a hung server is cut after 1 + 5 s.
        tiles=TileSettings(statement_timeout_ms=1000, connect_timeout=1, retry_after=1),
    )


def timed(client: TestClient, path: str) -> tuple[int, float, dict[str, str], str]:
    started = time.monotonic()
    response = client.get(path)
    return response.status_code, time.monotonic() - started, dict(response.headers), response.text


def tiles_around(zoom: int, count: int, skip: int = 0) -> list[str]:
    x0, y0 = tile_of(*VADUZ, zoom)
    offsets = sorted(
        ((dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)),
        key=lambda d: (max(abs(d[0]), abs(d[1])), d),
    )
    cells = [(x0 + dx, y0 + dy) for dx, dy in offsets]
    return [f"/tiles/basemap/{zoom}/{x}/{y}.mvt" for x, y in cells[skip : skip + count]]


def assert_still_serving(client: TestClient, cached: str) -> None:
    """Static assets, a cached tile and /health answer at once, database or not."""
    for path in [*STATIC, cached]:
        status, seconds, _, _ = timed(client, path)
        assert status == 200, path
        assert seconds < 5, (path, seconds)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"


def assert_recovers(client: TestClient, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        response = client.get(path)
        if response.status_code == 200:
            assert mapbox_vector_tile.decode(response.content)
            break
        assert response.status_code == 503
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.5)
    assert client.get("/health").json()["status"] == "ok"


def assert_unavailable(status: int, headers: dict[str, str], text: str) -> None:
    assert status == 503, text
    assert int(headers["retry-after"]) >= 1
    assert "127.0.0.1" not in text and "port" not in text and "host" not in text


@contextmanager
def serving(url: str, cache_dir: Path, zoom: int, fresh: int) -> Iterator[Served]:
    """A client, a tile it has cached and ``fresh`` tiles it has not."""
    with TestClient(create_app(fault_settings(url, cache_dir)), client=LOOPBACK) as client:
        cached = tiles_around(zoom, 1)[0]
        assert client.get(cached).status_code == 200
        yield client, cached, tiles_around(zoom, fresh, skip=1)


def test_database_stopped_then_started(
    cluster: EmbeddedCluster, liechtenstein_url: str, tmp_path: Path
) -> None:
    with serving(liechtenstein_url, tmp_path, 14, 4) as (c, cached, fresh):
        cluster.stop()
        try:
            assert_still_serving(c, cached)
            for path in fresh:
                assert_unavailable(*timed(c, path)[::2], c.get(path).text)
            plan = c.get("/townplans/Vaduz.pdf")
            assert_unavailable(plan.status_code, dict(plan.headers), plan.text)
            communes = c.get("/townplans/communes.json")
            assert_unavailable(communes.status_code, dict(communes.headers), communes.text)
        finally:
            cluster.start()
        assert_recovers(c, fresh[0])


@contextmanager
def database_hung() -> Iterator[list[psutil.Process]]:
    """SIGSTOP the postmaster and all its backends (the TCP stack still answers)."""
    info = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var"))).info()
    assert info is not None
    pid = int(Path(info.cluster_dir, "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    stopped = [master, *master.children(recursive=True)]
    for process in stopped:
        process.send_signal(signal.SIGSTOP)
    try:
        yield stopped
    finally:
        for process in stopped:
            process.send_signal(signal.SIGCONT)


def test_database_hung_costs_no_static_request(
    cluster: EmbeddedCluster, liechtenstein_url: str, tmp_path: Path
) -> None:
    with serving(liechtenstein_url, tmp_path, 13, 24) as (c, cached, fresh):
        with database_hung(), ThreadPoolExecutor(24) as pool:
            # Uncached requests fill every database slot and wait on the hung server...
            waiting = [pool.submit(timed, c, path) for path in fresh]
            time.sleep(1.5)
            # ...while everything that needs no database answers at once.
            assert_still_serving(c, cached)
            results = [future.result(timeout=60) for future in waiting]
        for status, seconds, headers, text in results:
            # Each one was cut by the client-side deadline or refused by the breaker.
            assert_unavailable(status, headers, text)
            assert seconds < 30
        assert_recovers(c, fresh[0])


def test_a_hung_render_process_is_replaced(
    liechtenstein_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FONDPLAN_RASTER_TIMEOUT", "120")
    settings = render_settings(liechtenstein_url)
    x, y = tile_of(*VADUZ, 14)
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        assert client.get("/health").json()["render"]["started"] is False
        # The first render starts MapLibre (slow on a busy machine); then a short timeout.
        assert client.get(f"/styles/colour/14/{x}/{y}.png").status_code == 200
        raster = client.app.state.context.health["render"].__self__  # type: ignore[attr-defined]
        raster.raster.timeout = 5.0
        render = client.get("/health").json()["render"]
        hung = psutil.Process(render["pid"])
        hung.send_signal(signal.SIGSTOP)
        try:
            response = client.get(f"/styles/colour/14/{x + 1}/{y}.png")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "longer than 5 s" in response.json()["detail"]
            # The hung process was killed, not left stopped.
            assert not hung.is_running() or hung.status() == psutil.STATUS_ZOMBIE
        finally:
            if hung.is_running():
                hung.send_signal(signal.SIGCONT)
        raster.raster.timeout = 120.0
        again = client.get(f"/styles/colour/14/{x}/{y + 1}.png")
        assert again.status_code == 200 and again.content.startswith(b"\x89PNG")
        render = client.get("/health").json()["render"]
        assert render["timeouts"] == 1 and render["restarts"] >= 1
        assert render["pid"] not in (None, hung.pid)
        metrics = client.get("/metrics").text
        assert "fondplan_render_timeouts_total 1.0" in metrics
        assert "fondplan_render_process_up 1.0" in metrics
        assert 'fondplan_requests_limit{kind="raster"} 4.0' in metrics
        assert "fondplan_db_up 1.0" in metrics


#: Town centres of Liechtenstein, the ends of the routes asked while the database is down.
TOWNS = [
    (9.5209, 47.1410),  # Vaduz
    (9.5095, 47.1650),  # Schaan
    (9.4980, 47.0650),  # Balzers
    (9.5420, 47.1180),  # Triesenberg
    (9.5300, 47.1040),  # Triesen
    (9.5220, 47.2110),  # Eschen
    (9.5620, 47.2000),  # Planken
]


def route_paths(count: int) -> list[str]:
    """``count`` driving routes between the towns; every third with steps and a full
    overview (answered by a worker thread, the others by the event loop)."""
    pairs = [(a, b) for a in TOWNS for b in TOWNS if a != b]
    paths = []
    for i in range(count):
        (x0, y0), (x1, y1) = pairs[i % len(pairs)]
        # Moved a little each round, so that no two requests are the same.
        shift = (i // len(pairs)) * 0.0004
        options = "?steps=true&overview=full&annotations=true" if i % 3 == 0 else ""
        paths.append(
            f"/route/v1/driving/{x0 + shift:.5f},{y0:.5f};{x1:.5f},{y1 + shift:.5f}{options}"
        )
    return paths


def test_routing_answers_without_the_database(
    cluster: EmbeddedCluster, liechtenstein_url: str, tmp_path: Path
) -> None:
    settings = fault_settings(liechtenstein_url, tmp_path)
    settings = settings.model_copy(update={"server": ServerSettings(disable=frozenset({"raster"}))})
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        deadline = time.monotonic() + 120
        while not client.get("/health").json()["routing"]["ready"]:
            assert time.monotonic() < deadline, "the routing data did not load"
            time.sleep(0.5)
        paths = route_paths(200)
        fresh = tiles_around(14, 1, skip=5)[0]
        cluster.stop()
        try:
            assert client.get(fresh).status_code == 503
            for path in paths:
                response = client.get(path)
                assert response.status_code == 200, (path, response.text)
                route = response.json()["routes"][0]
                assert route["distance"] > 500
                assert ("legs" in route and route["legs"][0]["steps"]) or "steps" not in path
            health = client.get("/health").json()
            assert health["status"] == "degraded" and health["routing"]["ready"]
        finally:
            cluster.start()
        assert_recovers(client, fresh)
        assert client.get(paths[1]).status_code == 200

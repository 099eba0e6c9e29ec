"""The server counts its event loop's stalls, and shows them in /metrics."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.tileserver.conftest import serve_process, serving_client, tile_settings
from tileserver.app import create_app
from tileserver.server import LoopWatch


def test_a_blocked_loop_is_counted_as_a_stall() -> None:
    watch = LoopWatch(interval=0.005)

    async def main() -> None:
        watching = asyncio.get_running_loop().create_task(watch.run())
        await asyncio.sleep(0.05)
        assert watch.checks > 0
        before = dict(watch.stalls)
        time.sleep(0.15)  # a request holding the loop
        await asyncio.sleep(0.05)
        watching.cancel()
        assert watch.stalls[0.1] >= before[0.1] + 1
        assert watch.stalls[0.005] > before[0.005]

    asyncio.run(main())


def hold_the_loop(seconds: float) -> None:
    """A request's work done on the event loop."""
    time.sleep(seconds)


def traced_stalls(caplog: pytest.LogCaptureFixture, trace: float, hold: float) -> list[str]:
    """The stalls a watch tracing from ``trace`` seconds on logs while the loop is held for
    ``hold`` seconds."""
    watch = LoopWatch(interval=0.005, trace=trace)

    async def main() -> None:
        watching = asyncio.get_running_loop().create_task(watch.run())
        await asyncio.sleep(0.05)
        hold_the_loop(hold)
        await asyncio.sleep(0.1)
        watching.cancel()

    with caplog.at_level(logging.WARNING, logger="tileserver.server"):
        asyncio.run(main())
    return [r.getMessage() for r in caplog.records if "event loop stalled" in r.getMessage()]


def test_a_traced_stall_is_logged_with_where_the_loop_spent_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalls = traced_stalls(caplog, trace=0.03, hold=0.2)
    assert len(stalls) == 1, stalls
    lasted = int(stalls[0].split()[3])
    assert 150 <= lasted <= 400, stalls
    assert "hold_the_loop (tileserver/test_load_stalls.py:" in stalls[0]


def test_short_stalls_are_not_traced(caplog: pytest.LogCaptureFixture) -> None:
    assert not traced_stalls(caplog, trace=0.1, hold=0.03)


def test_the_stalls_are_in_the_metrics(liechtenstein_url: str, tmp_path: Path) -> None:
    with serving_client(liechtenstein_url, tmp_path) as client:
        time.sleep(0.2)
        metrics = client.get("/metrics").text
    assert 'fondplan_event_loop_stalls_total{over="20ms"}' in metrics
    checks = [
        line for line in metrics.splitlines() if line.startswith("fondplan_event_loop_checks")
    ]
    assert checks and float(checks[0].split()[-1]) > 0


def test_the_server_sets_its_switch_interval(liechtenstein_url: str, tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    app = create_app(tile_settings(liechtenstein_url, tmp_path, switch_interval=0.007))
    try:
        with TestClient(app):
            assert sys.getswitchinterval() == pytest.approx(0.007)
    finally:
        sys.setswitchinterval(before)


def test_the_started_server_keeps_its_objects_out_of_full_collections(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    env = {"FONDPLAN_DISABLE": "routing,raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (_, url):
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
            metrics = answer.read().decode()
    found = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("fondplan_gc")
    )
    # The app's modules, settings and routes: frozen once it started.
    assert float(found["fondplan_gc_frozen_objects"]) > 10_000, found
    assert 'fondplan_gc_collections_total{generation="2"}' in found

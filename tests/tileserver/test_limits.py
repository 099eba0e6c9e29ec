"""Per-kind admission: bounded queues, then 503 + Retry-After; raster bursts queue."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import psutil
import pytest

from tests.cities.test_plan_process import get as fetch
from tests.tileserver.conftest import (
    LOOPBACK,
    VADUZ,
    TestClient,
    render_settings,
    serve_process,
    tile_of,
    tile_settings,
)
from tileserver.app import create_app
from tileserver.limits import Gate, Overloaded, kind_of
from tileserver.settings import LimitSettings


def test_a_gate_queues_then_refuses() -> None:
    outcomes: list[str] = []

    async def main() -> None:
        gate = Gate("plans", limit=2, queue=1, wait=5.0)
        release = anyio.Event()

        async def hold(name: str) -> None:
            try:
                async with gate.slot():
                    outcomes.append(f"{name} in")
                    await release.wait()
            except Overloaded as exc:
                assert exc.retry_after == 1
                outcomes.append(f"{name} refused")

        async with anyio.create_task_group() as group:
            for name in "abcd":
                group.start_soon(hold, name)
                await anyio.sleep(0.05)
            assert (gate.running, gate.waiting, gate.refused) == (2, 1, 1)
            release.set()

    anyio.run(main)
    assert outcomes == ["a in", "b in", "d refused", "c in"]


def test_a_gate_refuses_after_waiting_too_long() -> None:
    async def main() -> None:
        gate = Gate("routes", limit=1, queue=5, wait=0.2)
        async with gate.slot():
            with pytest.raises(Overloaded):
                async with gate.slot():
                    pass
        assert gate.refused == 1

    anyio.run(main)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/tiles/basemap/3/4/2.mvt", None),
        ("/tiles/basemap.json", "static"),
        ("/styles/colour/3/4/2@2x.png", None),
        ("/styles/colour.json", "static"),
        ("/route/v1/car/1,2;3,4", "routes"),
        ("/table/v1/car/1,2;3,4", "routes"),
        ("/townplans/Vaduz.pdf", None),
        ("/townplans/communes.json", "static"),
        ("/health", "ops"),
        ("/fonts/Noto Sans Regular/0-255.pbf", "static"),
    ],
)
def test_kinds(path: str, kind: str | None) -> None:
    assert kind_of(path) == kind


def test_a_raster_burst_queues_instead_of_failing(
    liechtenstein_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four renders at once, sixteen asked: the others wait their turn, none gets 503."""
    monkeypatch.setenv("FONDPLAN_RASTER_MAX_PENDING", "4")
    settings = render_settings(liechtenstein_url, LimitSettings(raster=4, wait=300))
    x, y = tile_of(*VADUZ, 15)
    paths = [f"/styles/grey/15/{x + dx}/{y + dy}.png" for dx in range(4) for dy in range(4)]
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        with ThreadPoolExecutor(len(paths)) as pool:
            responses = list(pool.map(client.get, paths))
        assert [r.status_code for r in responses] == [200] * len(paths)
        assert all(r.content.startswith(b"\x89PNG") for r in responses)
        assert client.get("/health").json()["render"]["renders"] == len(paths)


def test_requests_for_a_plan_being_drawn_join_it_without_a_place(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    """One drawing place and no queue: twelve requests for the same plan all get it, drawn
    once; a different plan asked meanwhile is refused with Retry-After, then drawn."""
    env = {
        "FONDPLAN_DISABLE": "routing",
        "FONDPLAN_TOWNPLAN_WORKERS": "1",
        "FONDPLAN_TOWNPLAN_QUEUE": "0",
        "FONDPLAN_LIMIT_PLANS": "1",
    }
    with serve_process(liechtenstein_url, tmp_path, env=env) as (_, url):
        same = f"{url}/townplans/Vaduz.png?paper=A4&dpi=100"
        other = f"{url}/townplans/Planken.png?paper=A4&dpi=72"
        with ThreadPoolExecutor(13) as pool:
            joined = [pool.submit(fetch, same) for _ in range(12)]
            time.sleep(0.5)
            refused = pool.submit(fetch, other).result()
            answers = [future.result() for future in joined]
        assert [status for status, _, _ in answers] == [200] * 12
        assert len({body for _, _, body in answers}) == 1
        assert answers[0][2].startswith(b"\x89PNG")
        assert refused[0] == 503 and int(refused[1]["retry-after"]) >= 1
        assert fetch(other)[0] == 200
        health = json.loads(fetch(f"{url}/health")[2])
        assert health["townplans"]["drawn"] == 2


def test_requests_for_a_tile_being_rendered_join_the_render(liechtenstein_url: str) -> None:
    """One render at a time and no queue: eight requests for the same raster tile get one
    render between them, none is refused."""
    settings = render_settings(liechtenstein_url, LimitSettings(raster=1, queue=0, wait=300))
    x, y = tile_of(*VADUZ, 15)
    path = f"/styles/grey/15/{x}/{y}.png"
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(client.get, [path] * 8))
        assert [r.status_code for r in responses] == [200] * 8
        assert len({r.content for r in responses}) == 1
        assert client.get("/health").json()["render"]["renders"] == 1


def test_the_tiles_limit_shares_twice_the_cpus_among_the_workers() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert LimitSettings().limit("tiles") == max(4, 2 * cpus)
    assert LimitSettings().limit("tiles", 2) == max(4, cpus)
    assert LimitSettings().limit("tiles", 4 * cpus) == 4
    # Set: each worker has that many, whatever their number.
    assert LimitSettings(tiles=7).limit("tiles", 4) == 7
    assert LimitSettings().limit("routes", 4) == LimitSettings().routes


def test_each_worker_of_serve_sizes_its_tiles_gate_by_their_number(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    env = {"FONDPLAN_DISABLE": "routing,raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, "--workers", "2", env=env) as (server, url):
        workers = [
            child.pid
            for child in psutil.Process(server.pid).children()
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert len(workers) == 2
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"FONDPLAN_WORKERS=2" in environ, pid
        deadline = time.monotonic() + 60
        # The workers' metrics are summed, once both have shared theirs.
        while (gauges := metric_values(fetch(f"{url}/metrics")[2].decode()))[
            "fondplan_workers"
        ] < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert gauges["fondplan_workers"] == 2
    assert gauges['fondplan_requests_limit{kind="tiles"}'] == 2 * LimitSettings().limit("tiles", 2)


def metric_values(text: str) -> dict[str, float]:
    """The series of a /metrics answer and their values."""
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


def test_a_tile_on_disk_is_answered_while_the_tiles_gate_is_full(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    """Another worker (or an earlier run) left the tile on disk: it does not wait for a place
    among the database's queries, as a tile to cut does."""
    settings = tile_settings(liechtenstein_url, tmp_path, disable=frozenset({"routing"}))
    settings = settings.model_copy(update={"limits": LimitSettings(tiles=1, queue=0)})
    x, y = tile_of(*VADUZ, 14)
    on_disk, to_cut = f"/tiles/basemap/14/{x}/{y}.mvt", f"/tiles/basemap/14/{x + 1}/{y}.mvt"
    release = threading.Event()
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        assert client.get(on_disk).status_code == 200
        client.app.state.tiles.memory.clear()  # type: ignore[attr-defined]
        gate = client.app.state.limits["tiles"]  # type: ignore[attr-defined]

        async def hold() -> None:
            async with gate.slot():
                await anyio.to_thread.run_sync(release.wait)

        assert client.portal is not None
        held = client.portal.start_task_soon(hold)
        try:
            deadline = time.monotonic() + 30
            while gate.running < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert client.get(to_cut).status_code == 503
            answer = client.get(on_disk)
            assert answer.status_code == 200, answer.text
        finally:
            release.set()
            held.result(timeout=30)
        assert client.get(to_cut).status_code == 200

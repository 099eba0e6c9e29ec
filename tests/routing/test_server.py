"""One routing server per ``fondplan serve``: every worker's routes, the engines built once."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import osmium
import psutil

from osmimport import schema
from osmimport.database import connect, drop_database
from osmimport.importer import run_import
from osmimport.settings import DatabaseSettings
from routing import store
from routing.build import build_before_swap
from routing.client import RoutingClient
from routing.http import answer
from routing.network import data_version
from routing.server import QUEUE_FULL, RoutingServerProcess
from routing.service import RoutingService
from routing.settings import RoutingSettings
from tests.routing.test_lifecycle import CENTRE, IN_CENTRE, IN_SUD_OUEST, SUD_OUEST
from tests.tileserver.conftest import serve_process, tile_settings
from tileserver.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROUTE = "/route/v1/driving/9.5209,47.1410;9.5230,47.1395"
HEAVY = "/route/v1/foot/9.5209,47.1410;9.5220,47.2110?steps=true&overview=full&annotations=true"


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return int(response.status), headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def health(url: str) -> dict[str, object]:
    body: dict[str, object] = json.loads(fetch(url + "/health")[2])
    return body


def routing_state(url: str) -> dict[str, object]:
    state = health(url)["routing"]
    assert isinstance(state, dict)
    return state


def wait_routing_ready(url: str, seconds: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        state = routing_state(url)
        if state.get("ready"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def server_pid(state: dict[str, object]) -> int:
    server = state["server"]
    assert isinstance(server, dict)
    return int(server["pid"])


def engine_pids(state: dict[str, Any]) -> dict[str, int]:
    """The engine process of each profile, from the routing server's health."""
    return {e["profile"]: int(e["pid"]) for e in state["server"]["engines"]}


def gone(pids: list[int], seconds: float = 30) -> bool:
    """Whether every process of ``pids`` has exited within ``seconds``."""
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def split_query(query: str) -> list[tuple[str, str]]:
    return [(name, value) for name, _, value in (p.partition("=") for p in query.split("&"))]


def kb(pid: int, field: str) -> int:
    """A figure of /proc/PID/smaps_rollup, in kB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def maps_routing_data(pid: int, data_dir: Path) -> bool:
    return str(data_dir / "routing") in Path(f"/proc/{pid}/maps").read_text()


def test_workers_share_one_routing_server(liechtenstein_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"FONDPLAN_DATA_DIR": str(data_dir)}
    with serve_process(liechtenstein_url, tmp_path / "tiles", "--workers", "2", env=env) as (
        proc,
        url,
    ):
        state = wait_routing_ready(url)
        pid = server_pid(state)
        family = psutil.Process(proc.pid).children()
        routing = [p for p in family if "routing.server" in " ".join(p.cmdline())]
        assert [p.pid for p in routing] == [pid]
        # One engine process for every profile, under the routing server.
        assert sorted(engine_pids(state)) == ["bike", "car", "foot"]
        descendants = psutil.Process(pid).children(recursive=True)
        engines = [p for p in descendants if p.pid in engine_pids(state).values()]
        assert len(engines) == 1, (descendants, state)
        # Nothing else: no process forking engines, no multiprocessing resource tracker.
        assert descendants == engines, [p.cmdline() for p in descendants]
        workers = [p for p in family if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in family]

        # Many clients on new connections: both workers take some, one server answers all.
        codes: list[int] = []

        def client() -> None:
            for _ in range(8):
                codes.append(fetch(url + ROUTE)[0])

        deadline = time.monotonic() + 60
        while True:
            threads = [threading.Thread(target=client) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            server = routing_state(url)["server"]
            assert isinstance(server, dict)
            if {int(p) for p in server["clients"]} == {w.pid for w in workers}:
                break
            assert time.monotonic() < deadline, (server, [w.pid for w in workers])
        assert set(codes) == {200}
        assert {server_pid(routing_state(url)) for _ in range(10)} == {pid}
        status, _, body = fetch(url + HEAVY)
        assert status == 200 and json.loads(body)["routes"][0]["distance"] > 5000

        # Only the engine processes map the routing data: not the workers, nor the server.
        assert all(maps_routing_data(e.pid, data_dir) for e in engines)
        assert not any(maps_routing_data(p, data_dir) for p in [pid, *(w.pid for w in workers)])
        figures = {
            "server": (kb(pid, "Rss"), kb(pid, "Pss")),
            **{f"engine {e.pid}": (kb(e.pid, "Rss"), kb(e.pid, "Pss")) for e in engines},
            **{f"worker {w.pid}": (kb(w.pid, "Rss"), kb(w.pid, "Pss")) for w in workers},
        }
        print("RSS/PSS kB:", figures)


def test_a_killed_routing_server_is_replaced(liechtenstein_url: str, tmp_path: Path) -> None:
    env = {"FONDPLAN_DATA_DIR": str(tmp_path / "data")}
    with serve_process(liechtenstein_url, tmp_path / "tiles", "--workers", "2", env=env) as (
        _,
        url,
    ):
        state = wait_routing_ready(url)
        pid, engines = server_pid(state), list(engine_pids(state).values())
        assert fetch(url + ROUTE)[0] == 200
        psutil.Process(pid).send_signal(signal.SIGKILL)
        unavailable = []
        deadline = time.monotonic() + 120
        while True:
            status, headers, body = fetch(url + ROUTE)
            if status == 200:
                break
            assert status == 503, body
            assert headers.get("retry-after") == "1", (headers, body)
            unavailable.append(json.loads(body)["code"])
            assert time.monotonic() < deadline, "the routing server was not replaced"
            time.sleep(0.05)
        assert unavailable, "no request fell between the death and the restart"
        # Its engine processes do not outlive it.
        assert gone(engines), engines
        state = wait_routing_ready(url)
        assert server_pid(state) != pid
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_serve_stops_its_routing_server(liechtenstein_url: str, tmp_path: Path) -> None:
    env = {"FONDPLAN_DATA_DIR": str(tmp_path / "data")}
    for stop in (signal.SIGTERM, signal.SIGKILL):
        with serve_process(liechtenstein_url, tmp_path / "tiles", "--workers", "2", env=env) as (
            proc,
            url,
        ):
            state = wait_routing_ready(url)
            pids = [server_pid(state), *engine_pids(state).values()]
            assert len(pids) == 4
            proc.send_signal(stop)
            proc.wait(timeout=60)
            assert gone(pids), stop


def test_requests_beyond_the_queue_answer_503(liechtenstein_url: str, tmp_path: Path) -> None:
    database = DatabaseSettings(database_url=liechtenstein_url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings(routing_server_queue=1))
    process.start()
    try:
        client = RoutingClient(process.path, RoutingSettings())
        version = data_version(liechtenstein_url)
        _wait_ready(client, version)
        coordinates, _, query = HEAVY.removeprefix("/route/v1/foot/").partition("?")
        params = split_query(query)

        async def burst() -> list[tuple[int, bytes]]:
            return await asyncio.gather(
                *(client.answer(version, "route", "foot", coordinates, params) for _ in range(6))
            )

        answers = asyncio.run(burst())
        statuses = sorted(status for status, _ in answers)
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        assert {body for status, body in answers if status == 503} == {QUEUE_FULL}
        assert client.health(version)["server"]["rejected"] == statuses.count(503)
    finally:
        process.stop()


def test_routes_switch_with_the_tiles_through_the_routing_server(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    run_import(url, [SUD_OUEST], before_swap=[build_before_swap])
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings())
    process.start()
    try:
        settings = tile_settings(url, tmp_path / "tiles")
        section = RoutingSettings(routing_server=process.path)
        settings = settings.model_copy(update={"routing": section})
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 120
            while not client.get("/health").json()["routing"]["ready"]:
                assert time.monotonic() < deadline, client.get("/health").json()
                time.sleep(0.2)
            assert client.get(f"/route/v1/driving/{IN_SUD_OUEST}").json()["code"] == "Ok"
            assert client.get(f"/route/v1/driving/{IN_CENTRE}").json()["code"] == "NoSegment"
            second = run_import(url, [CENTRE], before_swap=[build_before_swap]).data_version
            deadline = time.monotonic() + 60
            while client.get("/health").json()["data_version"] != second:
                assert time.monotonic() < deadline, "the server never switched"
                time.sleep(0.1)
            # The switch hook had the routing server load the new version first.
            state = client.get("/health").json()["routing"]
            assert state["ready"] and second in state["server"]["versions"]
            assert client.get(f"/route/v1/driving/{IN_CENTRE}").json()["code"] == "Ok"
            assert client.get(f"/route/v1/driving/{IN_SUD_OUEST}").json()["code"] == "NoSegment"
    finally:
        process.stop()
    assert not process.path.exists()


def test_routes_are_answered_without_the_database_once_loaded(
    make_database: Callable[[], str], admin_url: str, tmp_path: Path
) -> None:
    url = make_database()
    version = run_import(url, [SUD_OUEST], before_swap=[build_before_swap]).data_version
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings())
    process.start()
    try:
        client = RoutingClient(process.path, RoutingSettings())
        _wait_ready(client, version)
        # The database is gone for good: the loaded engines still answer.
        drop_database(admin_url, url.rsplit("/", 1)[1])
        coordinates, _, query = IN_SUD_OUEST.partition("?")
        params = split_query(query)
        status, body = asyncio.run(client.answer(version, "route", "car", coordinates, params))
        assert status == 200 and json.loads(body)["code"] == "Ok", body
        assert client.health(version)["ready"]
    finally:
        process.stop()


def _wait_ready(client: RoutingClient, version: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        state = client.health(version)
        if state.get("ready"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def _ask(path: Path, version: str, profile: str, pair: str) -> tuple[int, bytes]:
    """One route from the routing server at ``path`` (a client per event loop: it keeps its
    connections)."""
    client = RoutingClient(path, RoutingSettings())
    coordinates, _, query = pair.partition("?")
    return asyncio.run(
        client.answer(version, "route", profile, coordinates, split_query(query) if query else [])
    )


def _with_maxspeed(source: Path, target: Path, maxspeed: str) -> int:
    """``source`` with one residential road's maxspeed set to ``maxspeed``; its way id."""
    changed = 0
    writer = osmium.SimpleWriter(str(target))
    try:
        for obj in osmium.FileProcessor(str(source)):
            if (
                not changed
                and isinstance(obj, osmium.osm.Way)
                and obj.tags.get("highway") == "residential"
                and len(obj.nodes) > 3
            ):
                changed = obj.id
                tags = {tag.k: tag.v for tag in obj.tags}
                writer.add(obj.replace(tags={**tags, "maxspeed": maxspeed}))
            else:
                writer.add(obj)
    finally:
        writer.close()
    return changed


def test_a_new_version_of_the_same_roads_shares_the_cch_and_answers_as_a_fresh_build(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    first = run_import(url, [SUD_OUEST], before_swap=[build_before_swap]).data_version
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings())
    process.start()
    rng = random.Random(7)
    pairs = [
        f"{rng.uniform(7.29, 7.33):.5f},{rng.uniform(47.72, 47.74):.5f};"
        f"{rng.uniform(7.29, 7.33):.5f},{rng.uniform(47.72, 47.74):.5f}"
        for _ in range(12)
    ]
    try:
        client = RoutingClient(process.path, RoutingSettings())
        state = _wait_ready(client, first)
        assert {p["cch"] for p in state["profiles"].values()} == {"mapped"}, state
        processes = engine_pids(state)

        # Only a maxspeed changed: the same turn graph, other weights.
        slower = tmp_path / "slower.osm.pbf"
        assert _with_maxspeed(SUD_OUEST, slower, "10")
        second = run_import(url, [slower], before_swap=[build_before_swap]).data_version
        #: When each query of the first version started and ended.
        times: list[tuple[float, float]] = []
        stop = threading.Event()

        def query_first_version() -> None:
            while not stop.is_set():
                began = time.monotonic()
                status, _ = _ask(process.path, first, "car", pairs[0])
                times.append((began, time.monotonic()))
                assert status == 200

        querying = threading.Thread(target=query_first_version)
        querying.start()
        try:
            client.prepare(second)  # the first call of a worker does not wait
            began = time.monotonic()
            client.prepare(second)
            ready = time.monotonic()
        finally:
            stop.set()
            querying.join()
        state = _wait_ready(client, second)
        assert {p["cch"] for p in state["profiles"].values()} == {"shared"}, state
        # Each profile's process took the new weights: no second process.
        assert engine_pids(state) == processes, state
        slowest = max(end - start for start, end in times)
        print(f"weights-only switch {ready - began:.2f} s, slowest query {slowest:.3f} s")
        # The first version kept answering while the second loaded.
        assert any(began < end < ready for _, end in times), (began, ready, times)
        assert slowest < 2.0, times

        # The answers are those of engines built afresh from the stored data.
        fresh = RoutingService(url, RoutingSettings())
        changed = 0
        for pair in pairs:
            for profile in ("driving", "foot"):
                status, body = _ask(process.path, second, profile, pair)
                expected = answer(fresh, "route", profile, pair, [])
                assert (status, json.loads(body)) == (expected[0], json.loads(expected[1]))
                _, before = _ask(process.path, first, profile, pair)
                changed += before != body
        assert changed, "the maxspeed changed no route: the test shows nothing"
    finally:
        process.stop()


def test_a_route_is_answered_while_another_profile_still_loads(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    version = run_import(url, [SUD_OUEST], before_swap=[build_before_swap]).data_version
    data_dir = tmp_path / "data"
    # The foot data is in the file cache; the others must come from the database, which
    # holds them back until the end of the test's transaction.
    store.load(url, "foot", version, cache=store.cache_root(data_dir, url))
    blocker = connect(url)
    database = DatabaseSettings(database_url=url, data_dir=data_dir)
    process = RoutingServerProcess(database, RoutingSettings())
    try:
        with blocker.cursor() as cur:
            cur.execute(f"LOCK TABLE {schema.SCHEMA}.{schema.ROUTING_DATA_TABLE}")
        process.start()
        client = RoutingClient(process.path, RoutingSettings())
        status, body = _ask(process.path, version, "foot", IN_SUD_OUEST)
        assert status == 200 and json.loads(body)["code"] == "Ok", body
        profiles = client.health(version)["profiles"]
        assert profiles["foot"]["loaded"] and not profiles["car"]["loaded"], profiles
        assert profiles["car"]["state"] == "loading"
        blocker.rollback()
        _wait_ready(client, version)
        status, body = _ask(process.path, version, "car", IN_SUD_OUEST)
        assert status == 200 and json.loads(body)["code"] == "Ok", body
    finally:
        blocker.close()
        process.stop()

"""The routing server's engine process: every profile in it, switched, dropped when idle."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from osmimport import schema
from osmimport.database import connect
from osmimport.importer import run_import
from osmimport.settings import DatabaseSettings
from routing.build import build_before_swap
from routing.client import RoutingClient
from routing.network import data_version
from routing.server import RoutingServerProcess
from routing.settings import RoutingSettings
from tests.routing.test_lifecycle import CENTRE, IN_CENTRE, IN_SUD_OUEST, SUD_OUEST
from tests.routing.test_server import _ask, _wait_ready, engine_pids, gone

#: A car route and a foot route in Liechtenstein.
CAR = "9.5209,47.1410;9.5230,47.1395"
FOOT = "9.5209,47.1410;9.5220,47.2110"


def _wait(client: RoutingClient, version: str, test: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 120
    while True:
        state = client.health(version)
        if test(state):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


@contextlib.contextmanager
def serving(url: str, tmp_path: Path, **settings: Any) -> Iterator[RoutingServerProcess]:
    """A routing server for the database at ``url`` with ``settings``, stopped after."""
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings(**settings))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_a_car_route_answers_while_the_foot_profile_is_stuck_loading(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    """The foot profile loads in a thread of the engine process: held up mid-load (its data
    held back by the database), car routes are answered all along, by the same process."""
    url = liechtenstein_url
    version = data_version(url)
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    settings = RoutingSettings(routing_server_preload=False)
    process = RoutingServerProcess(database, settings)
    process.start()
    blocker = connect(url)
    foot: list[tuple[int, bytes]] = []
    try:
        client = RoutingClient(process.path, RoutingSettings())
        state = client.health(version)
        assert state["ready"] and state["server"]["engines"] == [], state
        assert {p["state"] for p in state["profiles"].values()} == {"idle"}, state
        assert _ask(process.path, version, "driving", CAR)[0] == 200
        car = engine_pids(client.health(version))["car"]

        # The foot data must come from the database, which holds it back meanwhile.
        with blocker.cursor() as cur:
            cur.execute(f"LOCK TABLE {schema.SCHEMA}.{schema.ROUTING_DATA_TABLE}")
        asking = threading.Thread(
            target=lambda: foot.append(_ask(process.path, version, "foot", FOOT))
        )
        asking.start()
        try:
            state = _wait(client, version, lambda s: "foot" in engine_pids(s))
            assert engine_pids(state)["foot"] == car, state
            times = []
            for _ in range(20):
                began = time.monotonic()
                status, body = _ask(process.path, version, "driving", CAR)
                times.append(time.monotonic() - began)
                assert status == 200 and json.loads(body)["code"] == "Ok", body
            state = client.health(version)
            assert state["profiles"]["foot"]["state"] == "loading", state
            assert state["profiles"]["car"]["loaded"], state
            assert not foot
            print(f"car routes while foot is stuck: slowest {max(times) * 1000:.0f} ms")
            assert max(times) < 2.0, times
        finally:
            blocker.rollback()
        asking.join(120)
        assert foot and foot[0][0] == 200, foot
        assert engine_pids(client.health(version)) == {"car": car, "foot": car}
    finally:
        blocker.close()
        process.stop()


def test_an_idle_profile_is_dropped_and_loaded_again(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    version = data_version(liechtenstein_url)
    settings = {"routing_server_preload": False, "routing_server_idle": 1.0}
    with serving(liechtenstein_url, tmp_path, **settings) as process:
        client = RoutingClient(process.path, RoutingSettings())
        assert _ask(process.path, version, "driving", CAR)[0] == 200
        state = client.health(version)
        first = engine_pids(state)
        assert list(first) == ["car"], state
        assert state["profiles"]["car"]["loaded"] and state["ready"], state
        # Idle for longer than the setting: the process exits, its memory given back.
        state = _wait(client, version, lambda s: not s["server"]["engines"])
        assert gone([first["car"]])
        assert state["profiles"]["car"]["state"] == "idle" and state["ready"], state
        status, body = _ask(process.path, version, "driving", CAR)
        assert status == 200 and json.loads(body)["code"] == "Ok", body
        again = engine_pids(client.health(version))
        assert list(again) == ["car"] and again["car"] != first["car"]


def test_a_new_road_network_loads_in_new_processes_and_the_old_ones_exit(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    first = run_import(url, [SUD_OUEST], before_swap=[build_before_swap]).data_version
    database = DatabaseSettings(database_url=url, data_dir=tmp_path / "data")
    process = RoutingServerProcess(database, RoutingSettings(routing_server_grace=1.0))
    process.start()
    try:
        client = RoutingClient(process.path, RoutingSettings())
        old = engine_pids(_wait_ready(client, first))
        assert len(old) == 3
        second = run_import(url, [CENTRE], before_swap=[build_before_swap]).data_version
        answered: list[int] = []
        stop = threading.Event()

        def query_first_version() -> None:
            while not stop.is_set():
                answered.append(_ask(process.path, first, "car", IN_SUD_OUEST)[0])

        querying = threading.Thread(target=query_first_version)
        querying.start()
        try:
            client.prepare(second)  # the first call of a worker does not wait
            client.prepare(second)
        finally:
            stop.set()
            querying.join()
        # The old version answered while the new one loaded.
        assert answered and set(answered) == {200}, answered
        state = _wait_ready(client, second)
        new = engine_pids(state)
        assert {p["cch"] for p in state["profiles"].values()} == {"mapped"}, state
        assert len(new) == 3 and not set(new.values()) & set(old.values()), (old, new)
        assert _ask(process.path, second, "car", IN_CENTRE)[0] == 200
        # Named no more: the old version's processes exit.
        assert gone(list(old.values()), 30), old
        state = _wait(client, second, lambda s: s["server"]["versions"] == [second])
        assert engine_pids(state) == new
    finally:
        process.stop()


def test_an_idle_profile_leaves_the_engine_process_the_others_stay(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    version = data_version(liechtenstein_url)
    settings = {"routing_server_preload": False, "routing_server_idle": 2.0}
    with serving(liechtenstein_url, tmp_path, **settings) as process:
        client = RoutingClient(process.path, RoutingSettings())
        assert _ask(process.path, version, "driving", CAR)[0] == 200
        assert _ask(process.path, version, "foot", FOOT)[0] == 200
        pid = engine_pids(client.health(version))["car"]
        assert engine_pids(client.health(version)) == {"car": pid, "foot": pid}
        # Foot keeps being asked, car is not: car leaves the process, foot stays in it.
        deadline = time.monotonic() + 60
        while "car" in engine_pids(state := client.health(version)):
            assert time.monotonic() < deadline, state
            assert _ask(process.path, version, "foot", FOOT)[0] == 200
            time.sleep(0.3)
        assert engine_pids(state) == {"foot": pid}, state
        assert state["profiles"]["car"]["state"] == "idle", state
        # Asked again, car loads in the same process.
        status, body = _ask(process.path, version, "driving", CAR)
        assert status == 200 and json.loads(body)["code"] == "Ok", body
        assert engine_pids(client.health(version)) == {"car": pid, "foot": pid}

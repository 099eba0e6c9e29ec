"""Under load the server keeps the CPU for answers: render and routing processes yield it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest

from osmimport import schema
from osmimport.children import lower_backend_priority, lower_priority, lower_session_priority
from tests.tileserver.conftest import VADUZ, serve_process, tile_of
from tileserver.limits import Limits
from tileserver.settings import LimitSettings

#: A short car route in Vaduz.
ROUTE = "9.5209,47.1410;9.5230,47.1395"


def niceness(pid: int) -> int:
    """The nice value of a process, as the kernel reports it (field 19 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count the fields after its closing paren.
    return int(stat.rsplit(")", 1)[1].split()[16])


def render_pid(url: str) -> int:
    """Render a raster tile through the server, then ask /health for its render process."""
    x, y = tile_of(*VADUZ, 14)
    with urllib.request.urlopen(f"{url}/styles/grey/14/{x}/{y}.png", timeout=120) as answer:
        assert answer.status == 200
        assert answer.read().startswith(b"\x89PNG")
    with urllib.request.urlopen(f"{url}/health", timeout=30) as answer:
        pid: int = json.loads(answer.read())["render"]["pid"]
    return pid


@pytest.mark.parametrize("nice", ["7", "0"])
def test_the_render_process_runs_at_the_background_priority(
    liechtenstein_url: str, tmp_path: Path, nice: str
) -> None:
    env = {
        "FONDPLAN_BACKGROUND_NICE": nice,
        "FONDPLAN_DATABASE_NICE": "0",
        "FONDPLAN_DISABLE": "routing,townplans",
    }
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, url):
        pid = render_pid(url)
        assert pid != server.pid
        assert niceness(pid) == min(19, niceness(server.pid) + int(nice))
        assert niceness(server.pid) == os.nice(0)
        # The render process's tile queries run as niced as it (the server's own, here not).
        backends = tile_backends(liechtenstein_url, server.pid, pid)
        levels = {niceness(backend) - niceness(parent(backend)) for backend in backends}
        assert levels == ({0, niceness(pid)} if nice != "0" else {0}), levels


def test_the_routing_server_and_its_engines_run_at_the_background_priority(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    env = {"FONDPLAN_ROUTING_NICE": "3", "FONDPLAN_DISABLE": "raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, url):
        with urllib.request.urlopen(f"{url}/route/v1/driving/{ROUTE}", timeout=120) as answer:
            assert json.loads(answer.read())["code"] == "Ok"
        with urllib.request.urlopen(f"{url}/health", timeout=30) as answer:
            routing = json.loads(answer.read())["routing"]["server"]
        pids = [routing["pid"], *(engine["pid"] for engine in routing["engines"])]
        assert len(pids) >= 2 and server.pid not in pids, routing
        expected = min(19, niceness(server.pid) + 3)
        assert [niceness(pid) for pid in pids] == [expected] * len(pids)


def parent(pid: int) -> int:
    """The parent process of ``pid`` (field 4 of /proc/PID/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def tile_backends(url: str, *owners: int) -> list[int]:
    """The PostgreSQL backends of the tile connections of processes ``owners`` (not those of
    other servers the test session keeps open), found by their client ports."""
    ports = [
        conn.laddr.port
        for owner in owners
        for conn in psutil.Process(owner).net_connections(kind="tcp")
        if conn.raddr
    ]
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'fondplan-tiles' "
                "AND client_port = ANY(%s)",
                (ports,),
            )
            return [pid for (pid,) in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize("nice", ["4", "0"])
def test_the_database_backends_cutting_tiles_run_at_the_database_priority(
    liechtenstein_url: str, tmp_path: Path, nice: str
) -> None:
    env = {"FONDPLAN_DATABASE_NICE": nice, "FONDPLAN_DISABLE": "routing,raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, url):
        x, y = tile_of(*VADUZ, 14)
        with urllib.request.urlopen(f"{url}/tiles/basemap/14/{x}/{y}.mvt", timeout=60) as answer:
            assert answer.status == 200
        backends = tile_backends(liechtenstein_url, server.pid)
        assert backends
        for pid in backends:
            assert niceness(pid) == min(19, niceness(parent(pid)) + int(nice)), pid
            # And its session's scheduling group, which it leads (see lower_session_priority).
            assert group_niceness(pid) in (None, int(nice)), pid


def test_the_tile_connections_are_opened_and_reniced_with_the_server(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    # Before the first request: not at the first burst of uncached tiles, whose backends
    # would start on the CPU the cached answers around them need.
    env = {"FONDPLAN_DATABASE_NICE": "4", "FONDPLAN_DISABLE": "routing,raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, _):
        backends = tile_backends(liechtenstein_url, server.pid)
        assert len(backends) == LimitSettings().limit("tiles"), backends
        for pid in backends:
            assert niceness(pid) == min(19, niceness(parent(pid)) + 4), pid
            assert group_niceness(pid) in (None, 4), pid


def test_only_the_backend_of_the_connection_is_reniced(liechtenstein_url: str) -> None:
    conn = psycopg2.connect(liechtenstein_url)
    other = psycopg2.connect(liechtenstein_url)
    try:
        pid, other_pid = conn.info.backend_pid, other.info.backend_pid
        before, group_before = niceness(pid), group_niceness(pid)
        assert lower_backend_priority(conn, 2)
        assert niceness(pid) == min(19, before + 2)
        assert lower_backend_priority(conn, 1)
        assert niceness(pid) == min(19, before + 3)
        assert niceness(other_pid) == niceness(parent(other_pid))
        if group_before is not None:
            # Each backend leads a session of its own, whose autogroup is its alone.
            assert group_niceness(pid) == min(19, group_before + 3)
            assert group_niceness(other_pid) == group_before
    finally:
        conn.close()
        other.close()


def group_niceness(pid: int) -> int | None:
    """The niceness of the autogroup of ``pid`` (None where the kernel has none)."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except OSError:
        return None


#: A busy process for 1.5 s, printing the CPU seconds it got.
SPIN = (
    "import time\nend = time.monotonic() + 1.5\n"
    "while time.monotonic() < end: pass\nprint(time.process_time())"
)


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists()
    or Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1",
    reason="the kernel does not group processes by session",
)
def test_a_process_leading_its_session_yields_the_cpu_once_its_group_is_lowered() -> None:
    # As PostgreSQL's backends do, each busy process leads a session (an autogroup) of its
    # own; as many again, in this session, stand for the server's event loops.
    cores = os.cpu_count() or 1
    spawn = partial(subprocess.Popen, [sys.executable, "-c", SPIN], stdout=subprocess.PIPE)
    ours = [spawn() for _ in range(cores)]
    apart = [spawn(start_new_session=True) for _ in range(cores)]
    try:
        for process in apart:
            assert lower_session_priority(process.pid, 10)
            assert group_niceness(process.pid) == 10
        # Sharing a session: its group is not this process's to change.
        assert not lower_session_priority(ours[0].pid, 10)
        got = [float(p.communicate(timeout=60)[0]) for p in [*ours, *apart]]
    finally:
        for process in [*ours, *apart]:
            process.kill()
            process.wait()
    # At an autogroup niceness of 10, a group weighs a tenth of one at 0; the process's own
    # niceness alone (os.setpriority) would leave the two halves even.
    assert sum(got[cores:]) < 0.5 * sum(got[:cores]), got


def test_a_child_niced_by_its_parent_and_by_itself_is_niced_once() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    # The child renices itself the way the render and plan processes do, once told to.
    script = (
        "import os, sys; from osmimport.children import lower_priority; sys.stdin.read(); "
        "lower_priority(0, 3, os.getppid()); print(os.getpriority(os.PRIO_PROCESS, 0))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        lower_priority(child.pid, 3, os.getpid())
        assert niceness(child.pid) == min(19, own + 3)
        out, _ = child.communicate(b"", timeout=60)
        assert int(out) == min(19, own + 3)
    finally:
        child.kill()
        child.wait()
    assert os.getpriority(os.PRIO_PROCESS, 0) == own


def threads_of(pid: int) -> set[str]:
    """The thread ids of a process."""
    return set(os.listdir(f"/proc/{pid}/task"))


def test_worker_threads_are_started_with_the_server_and_kept(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    # A burst of uncached tiles finds its worker threads running: the event loop never waits
    # for one to start, not even after a quiet while (anyio's own threads stop after 10 s).
    env = {"FONDPLAN_DISABLE": "routing,raster,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, url):
        started = threads_of(server.pid)
        # The limits' threads and the loop's own.
        assert len(started) > Limits(LimitSettings()).threads()
        x, y = tile_of(*VADUZ, 14)
        for burst in range(2):
            if burst:
                time.sleep(11)
            paths = [
                f"{url}/tiles/basemap/14/{x + dx}/{y + dy + 10 * burst}.mvt"
                for dx in range(6)
                for dy in range(5)
            ]
            with ThreadPoolExecutor(len(paths)) as pool:
                statuses = list(pool.map(status_of, paths))
            assert set(statuses) <= {200, 204}, statuses
            assert threads_of(server.pid) <= started, burst


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=120) as answer:
        status: int = answer.status
        return status


def test_the_database_backends_of_a_town_plan_run_at_the_background_priority(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    # The plan's street query waits on a lock the test holds: its backend can be looked at
    # while the plan is drawn (its connection closes with the plan's queries).
    env = {"FONDPLAN_BACKGROUND_NICE": "6", "FONDPLAN_DATABASE_NICE": "0"}
    env["FONDPLAN_DISABLE"] = "routing"
    with serve_process(liechtenstein_url, tmp_path, env=env) as (_, url):
        holder = psycopg2.connect(liechtenstein_url)
        try:
            with holder.cursor() as cur:
                cur.execute(f"LOCK TABLE {schema.SCHEMA}.street_labels IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as pool:
                plan = pool.submit(status_of, f"{url}/townplans/Planken.png?paper=A4&dpi=72")
                waiting = waiting_backends(holder, plan)
                holder.rollback()
                assert plan.result() == 200
        finally:
            holder.close()
    for pid, nice, group in waiting:
        assert nice == 6, pid
        assert group in (None, 6), pid


def waiting_backends(conn: Any, plan: Future[int]) -> list[tuple[int, int, int | None]]:
    """The backends other than tile connections waiting on a lock, once there are any: their
    pids, their niceness above their parent's, and their scheduling group's niceness."""
    with conn.cursor() as cur:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not plan.done():
            # A transaction sees the activity of its first look unless told to look again.
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name <> 'fondplan-tiles' AND datname = current_database()"
            )
            pids = [pid for (pid,) in cur.fetchall()]
            if pids:
                return [
                    (pid, niceness(pid) - niceness(parent(pid)), group_niceness(pid))
                    for pid in pids
                ]
            time.sleep(0.05)
    raise AssertionError(f"no plan query waited on the lock: {plan.exception() or plan.result()}")

"""Under load the server keeps the CPU for answers: render and routing processes yield it."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.tileserver.conftest import VADUZ, serve_process, tile_of

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
    env = {"FONDPLAN_BACKGROUND_NICE": nice, "FONDPLAN_DISABLE": "routing,townplans"}
    with serve_process(liechtenstein_url, tmp_path, env=env) as (server, url):
        pid = render_pid(url)
        assert pid != server.pid
        assert niceness(pid) == min(19, niceness(server.pid) + int(nice))
        assert niceness(server.pid) == os.nice(0)


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

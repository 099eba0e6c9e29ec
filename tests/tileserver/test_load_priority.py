"""Under load the server keeps the CPU for answers: its render processes run at a lower priority."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.tileserver.conftest import VADUZ, serve_process, tile_of


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

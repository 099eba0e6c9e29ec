"""A real server draws town plans in a child process: at a low priority, replaced when killed."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image

from tests.tileserver.conftest import serve_process

#: FONDPLAN_BACKGROUND_NICE of the servers of these tests.
NICE = 5
ENV = {"FONDPLAN_BACKGROUND_NICE": str(NICE), "FONDPLAN_DISABLE": "routing"}


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    fields = stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far."""
    fields = stat(pid)
    assert fields is not None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def niceness(pid: int) -> int:
    fields = stat(pid)
    assert fields is not None
    return int(fields[16])


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            fields = stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=300) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def plan_health(url: str) -> dict[str, Any]:
    status, _, body = get(f"{url}/health")
    assert status == 200
    facts: dict[str, Any] = json.loads(body)["townplans"]
    return facts


def plan_png(url: str, commune: str, dpi: int, paper: str = "A4") -> tuple[int, dict[str, str]]:
    """Ask for a plan; a 200 must hold a PNG."""
    status, headers, body = get(f"{url}/townplans/{commune}.png?paper={paper}&dpi={dpi}")
    if status == 200:
        Image.open(io.BytesIO(body)).verify()
    return status, headers


def wait_gone(pids: list[int], seconds: float = 15.0) -> list[int]:
    """The ``pids`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def test_plans_are_drawn_in_a_child_at_background_priority(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    with serve_process(liechtenstein_url, tmp_path, env=ENV) as (server, url):
        assert plan_health(url)["started"] is False
        server_cpu = cpu_seconds(server.pid)
        assert plan_png(url, "Planken", 72)[0] == 200
        (child,) = plan_health(url)["pids"]
        assert child != server.pid and int((stat(child) or [])[1]) == server.pid
        # The child yields the CPU like the render processes; its own render process inherits
        # that priority rather than lowering it once more.
        assert niceness(child) == min(19, niceness(server.pid) + NICE)
        renders = children(child)
        assert renders and all(niceness(pid) == niceness(child) for pid in renders)
        # A second plan: its Python work (labels, layout, documents) runs in the child.
        server_cpu, child_cpu = cpu_seconds(server.pid), cpu_seconds(child)
        assert plan_png(url, "Vaduz", 100)[0] == 200
        server_used = cpu_seconds(server.pid) - server_cpu
        child_used = cpu_seconds(child) - child_cpu
        assert server_used < child_used / 2, (server_used, child_used)
        assert plan_health(url)["drawn"] == 2
        metrics = get(f"{url}/metrics")[2].decode()
        assert "fondplan_plans_drawn_total 2.0" in metrics
        assert "fondplan_plan_processes 1.0" in metrics
        # Stopping the server stops the child and its render process.
        server.terminate()
        server.wait(timeout=60)
        assert wait_gone([child, *renders]) == []


def test_a_killed_child_costs_one_request_then_is_replaced(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    with serve_process(liechtenstein_url, tmp_path, env=ENV) as (server, url):
        assert plan_png(url, "Planken", 72)[0] == 200
        (idle,) = plan_health(url)["pids"]
        # Killed between plans: the next plan is drawn by a new child, nothing lost.
        os.kill(idle, signal.SIGKILL)
        time.sleep(1.0)
        assert plan_png(url, "Planken", 80)[0] == 200
        (second,) = plan_health(url)["pids"]
        assert second != idle
        # Killed while drawing: that request gets 503 with Retry-After.
        answers: list[tuple[int, dict[str, str]]] = []
        asking = threading.Thread(target=lambda: answers.append(plan_png(url, "Vaduz", 150)))
        asking.start()
        time.sleep(1.5)
        renders = children(second)
        os.kill(second, signal.SIGKILL)
        asking.join(300)
        ((status, headers),) = answers
        assert status == 503 and headers["retry-after"] == "5"
        assert wait_gone(renders) == []  # its render process stopped with it
        # The next request works, in a new child.
        assert plan_png(url, "Vaduz", 150)[0] == 200
        (third,) = plan_health(url)["pids"]
        assert third not in (idle, second)
        assert plan_health(url)["restarts"] == 2


def test_no_orphan_after_the_server_is_killed(liechtenstein_url: str, tmp_path: Path) -> None:
    with serve_process(liechtenstein_url, tmp_path, env=ENV) as (server, url):
        assert plan_png(url, "Planken", 72)[0] == 200
        (child,) = plan_health(url)["pids"]
        renders = children(child)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert wait_gone([child, *renders]) == []

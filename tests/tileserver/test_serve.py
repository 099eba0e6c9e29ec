"""``fondplan serve`` as an operator runs it: SIGTERM under load, kill -9, slow clients."""

from __future__ import annotations

import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from tests.tileserver.conftest import VADUZ, serve_process, tile_of

FAST = {"FONDPLAN_DISABLE": "routing", "FONDPLAN_HEADER_TIMEOUT": "1"}


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def family(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def wait_gone(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def port_free(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_sigterm_under_load_stops_everything_cleanly(
    liechtenstein_url: str, tmp_path: Path
) -> None:
    x, y = tile_of(*VADUZ, 14)
    with serve_process(liechtenstein_url, tmp_path, env=FAST) as (proc, url):
        # A render process is running; load keeps every kind of work busy.
        assert get(f"{url}/styles/colour/14/{x}/{y}.png") == 200
        children = family(proc.pid)
        assert children, "no render process"
        stop = threading.Event()
        statuses: list[int] = []

        def load(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                paths = [
                    f"/tiles/basemap/14/{x + i % 5}/{y + n % 5}.mvt",
                    f"/styles/colour/15/{2 * x + i % 7}/{2 * y + n % 7}.png",
                    "/styles/colour.json",
                ]
                statuses.append(get(url + paths[i % 3]))

        threads = [threading.Thread(target=load, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert proc.returncode in (0, -signal.SIGTERM), log[-3000:]
        assert "Application shutdown complete" in log
        assert "shutdown failed" not in log.lower() and "Traceback" not in log, log[-3000:]
        assert statuses, "no request was made"
        assert not wait_gone(children, 20), "a render process outlived the server"


def test_workers_exit_when_the_supervisor_is_killed(liechtenstein_url: str, tmp_path: Path) -> None:
    with serve_process(liechtenstein_url, tmp_path, "--workers", "2", env=FAST) as (proc, url):
        workers = family(proc.pid)
        assert len([p for p in workers if "python" in p.name().lower()]) >= 2
        proc.kill()
        proc.wait(timeout=10)
        assert not wait_gone(workers, 30), "a worker outlived its supervisor"
        deadline = time.monotonic() + 10
        while not port_free(url):
            assert time.monotonic() < deadline, "the port is still held"
            time.sleep(0.2)


def test_connections_without_headers_are_closed(liechtenstein_url: str, tmp_path: Path) -> None:
    with serve_process(liechtenstein_url, tmp_path, env=FAST) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        idle = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for sock in (idle, slow):
            sock.settimeout(15)
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server
            assert time.monotonic() - started < 14
            sock.close()
        # Whole requests are still served.
        assert get(f"{url}/health") == 200


def test_metrics_cover_every_worker(liechtenstein_url: str, tmp_path: Path) -> None:
    with serve_process(liechtenstein_url, tmp_path, "--workers", "2", env=FAST) as (_, url):
        for _ in range(20):
            assert get(f"{url}/styles/colour.json") == 200
        time.sleep(2.5)  # each worker shares its counts every second
        for _ in range(6):
            with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
                text = response.read().decode()
            assert "fondplan_workers 2.0" in text
            line = 'fondplan_http_requests_total{route="style",method="GET",status="200"} 20'
            assert line in text.splitlines(), text[:3000]

"""A server's worker holds none of the engines' libraries when the routing server answers."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from tests.tileserver.conftest import VADUZ, serve_process

#: The library of numba's compiler (some 40 MB per process that maps it).
COMPILER = "llvmlite"


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_worker_never_loads_the_compiler(liechtenstein_url: str, tmp_path: Path) -> None:
    lon, lat = VADUZ
    route = f"/route/v1/car/{lon},{lat};{lon + 0.01},{lat + 0.005}"
    with serve_process(liechtenstein_url, tmp_path) as (server, url):
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + route) as response:
                    assert response.status == 200
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.code
            assert time.monotonic() < deadline, "no route answered"
            time.sleep(0.5)
        # The worker answered a route (and cut no tile yet: one more).
        urllib.request.urlopen(url + "/health").read()
        children = psutil.Process(server.pid).children(recursive=True)
        engines = [p for p in children if COMPILER in _maps(p.pid)]
        assert engines, "the engine processes compile their kernels with numba"
        assert COMPILER not in _maps(server.pid)

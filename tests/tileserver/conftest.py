"""Fixtures of the vector tile server tests: an app over the imported Liechtenstein data."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from osmimport.settings import DatabaseSettings
from tests.conftest import LIECHTENSTEIN, ROOT, SAMPLE
from tileserver.app import create_app
from tileserver.settings import CacheSettings, LimitSettings, Settings

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: A client address the server trusts by default (FONDPLAN_FORWARDED_ALLOW_IPS).
LOOPBACK = ("127.0.0.1", 50000)

#: Vaduz town centre.
VADUZ = (9.5209, 47.1410)


def tile_of(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The tile containing a point (independent of tileserver.tiling)."""
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n)
    y = int(
        (1.0 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi)
        / 2.0
        * n
    )
    return x, y


def tile_settings(url: str, cache_dir: Path, **server: object) -> Settings:
    """Settings for a test app: the given database, a private disk cache."""
    from tileserver.settings import ServerSettings

    return Settings(
        database=DatabaseSettings(database_url=url),
        cache=CacheSettings(dir=cache_dir, version_ttl=1.0),
        server=ServerSettings(**server),  # type: ignore[arg-type]
    )


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_process(
    database_url: str, cache_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real uvicorn (``fondplan serve ARGS``) over ``database_url``, answering /health."""
    port = free_port()
    full_env = {
        **os.environ,
        "FONDPLAN_DATABASE_URL": database_url,
        "FONDPLAN_CACHE_DIR": str(cache_dir),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health") as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                assert proc.stderr is not None
                raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def render_settings(url: str, limits: LimitSettings | None = None) -> Settings:
    """Settings for a raster test app: no disk cache, neither routing nor town plans."""
    from tileserver.settings import ServerSettings

    return Settings(
        database=DatabaseSettings(database_url=url),
        cache=CacheSettings(disk=False),
        server=ServerSettings(disable=frozenset({"routing", "townplans"})),
        limits=limits or LimitSettings(),
    )


@contextmanager
def serving_client(url: str, cache_dir: Path) -> Iterator[TestClient]:
    """A client of an app serving ``url``, tile cache in ``cache_dir`` (lifespan running)."""
    # From loopback, like a reverse proxy on the same host: its X-Forwarded-* are trusted.
    with TestClient(create_app(tile_settings(url, cache_dir)), client=LOOPBACK) as client:
        yield client


@pytest.fixture(scope="session")
def tile_client(
    liechtenstein_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A client of an app serving the Liechtenstein import (lifespan running)."""
    with serving_client(liechtenstein_url, tmp_path_factory.mktemp("tilecache")) as client:
        yield client


#: Mulhouse centre (place de la Réunion): dense shops, house numbers and streets.
MULHOUSE = (7.3365, 47.7515)


@pytest.fixture(scope="session")
def town_centres_url(make_database: Callable[[], str]) -> str:
    """A database with Liechtenstein and Mulhouse centre imported together (built once)."""
    from osmimport.importer import run_import

    url = make_database()
    run_import(url, [LIECHTENSTEIN, SAMPLE / "mulhouse-centre.osm.pbf"])
    return url

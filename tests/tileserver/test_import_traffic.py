"""An import swapped in under traffic costs no request: no 5xx, no deadlock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg2

from osmimport.importer import run_import
from osmimport.settings import DatabaseSettings
from tests.conftest import TEST_DATA
from tests.tileserver.conftest import LOOPBACK, VADUZ, TestClient, tile_of
from tileserver.app import create_app
from tileserver.settings import CacheSettings, ServerSettings, Settings

EXTRACT = TEST_DATA / "liechtenstein-2013-08-03.osm.pbf"
CLIENTS = 8


def uncached_tiles() -> list[str]:
    paths = []
    for zoom in range(10, 15):
        x, y = tile_of(*VADUZ, zoom)
        paths += [f"/tiles/basemap/{zoom}/{x + dx}/{y + dy}.mvt" for dx in (0, 1) for dy in (0, 1)]
    return paths


def deadlocks(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def test_an_import_under_traffic_costs_no_request(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    first = run_import(url, [EXTRACT])
    settings = Settings(
        database=DatabaseSettings(database_url=url),
        # No cache: every request is a tile query that meets the swap.
        cache=CacheSettings(memory_bytes=0, disk=False, version_ttl=0.5),
        server=ServerSettings(disable=frozenset({"raster", "routing", "townplans", "viewer"})),
    )
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    done = threading.Event()
    paths = uncached_tiles()
    deadlocks_before = deadlocks(url)
    with TestClient(create_app(settings), client=LOOPBACK) as client:

        def hammer(offset: int) -> None:
            i = offset
            while not done.is_set():
                status = client.get(paths[i % len(paths)]).status_code
                with lock:
                    statuses[status] += 1
                i += 1

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            second = run_import(url, [EXTRACT])
            # Keep asking while the server follows the new version.
            while client.get("/health").json()["data_version"] != second.data_version:
                pass
            before = sum(statuses.values())
            while sum(statuses.values()) < before + 2 * CLIENTS:
                pass
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
    assert second.data_version != first.data_version
    assert sum(statuses.values()) > 4 * CLIENTS
    assert set(statuses) <= {200, 204}, statuses
    assert deadlocks(url) == deadlocks_before

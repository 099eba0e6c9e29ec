"""The server reads the embedded PostGIS with a read-only role; the import writes as the owner."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from osmimport.embedded import READER
from osmimport.importer import run_import
from osmimport.settings import DatabaseSettings
from tests.conftest import ROOT, TEST_DATA
from tests.tileserver.conftest import LOOPBACK, VADUZ, TestClient, tile_of
from tileserver.app import create_app
from tileserver.settings import CacheSettings, ServerSettings, Settings

EXTRACT = TEST_DATA / "liechtenstein-2013-08-03.osm.pbf"


def test_the_server_cannot_write_and_follows_new_imports(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    if os.environ.get("FONDPLAN_TEST_DATABASE_URL") or os.environ.get("FONDPLAN_DATABASE_URL"):
        pytest.skip("the read-only role is made in the embedded PostGIS")
    owner_url = make_database()
    run_import(owner_url, [EXTRACT])
    settings = Settings(
        database=DatabaseSettings(
            database_url=None,
            data_dir=Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")),
            embedded_dbname=owner_url.rsplit("/", 1)[1],
        ),
        cache=CacheSettings(disk=False, memory_bytes=0, version_ttl=0.5),
        server=ServerSettings(disable=frozenset({"routing", "townplans", "raster"})),
    )
    x, y = tile_of(*VADUZ, 14)
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        assert client.get(f"/tiles/basemap/14/{x}/{y}.mvt").status_code == 200
        reader_url = client.app.state.database_url  # type: ignore[attr-defined]
        conn = psycopg2.connect(reader_url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
                )
                assert cur.fetchone() == (READER, False)
                cur.execute("SELECT count(*) FROM osm.meta")
                for statement in (
                    "DELETE FROM osm.meta",
                    "CREATE TABLE osm.evil (id int)",
                    "DROP SCHEMA osm CASCADE",
                ):
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                        cur.execute(statement)
        finally:
            conn.close()
        # A new import (as the owner) is readable at once.
        second = run_import(owner_url, [EXTRACT])
        deadline = time.monotonic() + 30
        while client.get("/health").json()["data_version"] != second.data_version:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get(f"/tiles/basemap/14/{x}/{y + 1}.mvt").status_code == 200

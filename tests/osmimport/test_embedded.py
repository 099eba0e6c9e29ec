"""The embedded PostGIS starts idempotently and serves PostGIS."""

import os
from pathlib import Path

import psycopg2

from osmimport.embedded import EmbeddedCluster

ROOT = Path(__file__).resolve().parents[2]


def test_start_is_idempotent_and_has_postgis(admin_url: str) -> None:
    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    if os.environ.get("FONDPLAN_DATABASE_URL"):
        return
    first = cluster.start()
    second = cluster.start()
    assert first.port == second.port
    assert cluster.is_running()
    with psycopg2.connect(cluster.url("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)

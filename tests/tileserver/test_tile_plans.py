"""The plans of the tile statements on the connections the server cuts tiles with."""

from __future__ import annotations

from tests.tileserver.conftest import VADUZ, tile_of
from tileserver.catalog import read_catalog, tile_query
from tileserver.settings import TileSettings
from tileserver.sources import PostGISSource

#: Planner costs that make any table worth scanning in parallel.
EAGER_PARALLEL = (
    "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; "
    "SET min_parallel_table_scan_size = 0; SET min_parallel_index_scan_size = 0"
)


def test_tiles_are_cut_without_parallel_workers(liechtenstein_url: str) -> None:
    """However large the tables (here: parallel scans made free), a tile statement starts no
    parallel workers: their start-up costs more than a tile's few hundred pages."""
    settings = TileSettings()
    source = PostGISSource(liechtenstein_url, settings)
    source.open()
    try:
        with source.connection() as conn:
            catalog = read_catalog(conn)
            x, y = tile_of(*VADUZ, 10)
            with conn.cursor() as cur:
                cur.execute(EAGER_PARALLEL)
                query = tile_query(catalog, 10, extent=settings.extent, buffer=settings.buffer)
                cur.execute("EXPLAIN " + query.as_string(conn), {"z": 10, "x": x, "y": y})
                plan = "\n".join(row[0] for row in cur.fetchall())
            conn.rollback()
    finally:
        source.close()
    assert "Scan" in plan
    assert "Gather" not in plan, plan

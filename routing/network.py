"""Reading the raw road network the import keeps (``osm.road_ways`` and friends)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg2
from numpy.typing import NDArray
from psycopg2 import sql

from osmimport import schema
from osmimport.database import connect, load_sql
from osmimport.dataversion import NO_DATA, read_data_version
from routing.errors import GraphNotBuiltError

EARTH_RADIUS = 6371008.8
#: A road node as ``road_nodes.sql`` packs it.
_NODE_RECORD = np.dtype([("id", ">i8"), ("lon", ">f8"), ("lat", ">f8")])


@dataclass
class Network:
    """Every road way, the coordinates of their nodes, barriers and turn restrictions."""

    ways: list[tuple[int, dict[str, str], list[int]]]
    node_ids: NDArray[np.int64]
    node_lon: NDArray[np.float64]
    node_lat: NDArray[np.float64]
    barriers: dict[int, dict[str, str]]
    restrictions: list[tuple[int, dict[str, str], list[dict[str, Any]]]]
    data_version: str

    def coords(self, node_ids: list[int]) -> list[tuple[float, float]] | None:
        """(lon, lat) of each node, or None when one of them has no location."""
        positions = np.searchsorted(self.node_ids, node_ids)
        positions = np.clip(positions, 0, max(len(self.node_ids) - 1, 0))
        if len(self.node_ids) == 0 or not np.array_equal(self.node_ids[positions], node_ids):
            return None
        return list(
            zip(self.node_lon[positions].tolist(), self.node_lat[positions].tolist(), strict=True)
        )


def _query(name: str, **identifiers: sql.Composable) -> sql.Composed:
    return sql.SQL(load_sql("routing", name)).format(**identifiers)


def _table(name: str, schema_name: str = schema.SCHEMA) -> sql.Identifier:
    return sql.Identifier(schema_name, name)


def _rows(cursor: psycopg2.extensions.cursor, batch: int = 20000) -> Iterator[tuple[Any, ...]]:
    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield from rows


def data_version(url: str) -> str:
    """The version of the data served: the import's ``data_version``, else a fingerprint."""
    conn = connect(url)
    try:
        version = read_data_version(conn)
        if version != NO_DATA:
            return version
        with conn.cursor() as cur:
            try:
                cur.execute(_query("network_fingerprint.sql", ways=_table(schema.ROAD_WAYS_TABLE)))
            except psycopg2.errors.UndefinedTable as exc:
                raise GraphNotBuiltError(
                    "the database has no road network: import an OSM extract first"
                ) from exc
            row = cur.fetchone()
            return f"network-{row[0] if row else 'empty'}"
    finally:
        conn.close()


def read_network(url: str, schema_name: str = schema.SCHEMA, version: str | None = None) -> Network:
    """Load the road network of ``schema_name`` (the served one by default) into memory."""
    version = version or data_version(url)
    ways: list[tuple[int, dict[str, str], list[int]]] = []
    nodes, barriers, restrictions = scan_network(
        url, schema_name, lambda osm_id, tags, refs: ways.append((osm_id, tags, refs))
    )
    return Network(ways, *nodes, barriers, restrictions, version)


#: The ids, longitudes and latitudes of the road nodes.
Nodes = tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]
#: Turn restriction relations: id, tags, members.
Relations = list[tuple[int, dict[str, str], list[dict[str, Any]]]]


def scan_network(
    url: str, schema_name: str, way: Callable[[int, dict[str, str], list[int]], None]
) -> tuple[Nodes, dict[int, dict[str, str]], Relations]:
    """Stream every road way of ``schema_name`` to ``way`` (id, tags, node ids; in id order,
    fetched in batches through a server-side cursor); return the road nodes, the barrier nodes
    and the turn restrictions."""

    def table(name: str) -> sql.Identifier:
        return _table(name, schema_name)

    conn = connect(url)
    try:
        with conn.cursor(name="routing_ways") as cur:
            cur.itersize = 20000
            cur.execute(_query("road_ways.sql", ways=table(schema.ROAD_WAYS_TABLE)))
            for osm_id, tags, refs in _rows(cur):
                way(int(osm_id), tags or {}, refs)
        nodes = read_nodes(conn, table(schema.ROAD_NODES_TABLE))
        barriers, restrictions = read_rules(conn, table)
    except psycopg2.errors.UndefinedTable as exc:
        raise GraphNotBuiltError(
            "the database has no road network: import an OSM extract first"
        ) from exc
    finally:
        conn.close()
    return nodes, barriers, restrictions


def read_nodes(
    conn: psycopg2.extensions.connection, nodes: sql.Identifier, page: int = 1 << 18
) -> Nodes:
    """Ids (ascending), longitudes and latitudes of the road nodes, fetched in packed pages:
    no Python object per node."""
    parts: list[NDArray[Any]] = []
    after = -(1 << 63)
    with conn.cursor() as cur:
        while True:
            cur.execute(_query("road_nodes.sql", nodes=nodes), {"after": after, "limit": page})
            data, last = cur.fetchone() or (None, None)
            if data is None:
                break
            parts.append(np.frombuffer(data, dtype=_NODE_RECORD))
            after = last
    records = np.concatenate(parts) if parts else np.zeros(0, dtype=_NODE_RECORD)
    return (
        records["id"].astype(np.int64),
        records["lon"].astype(np.float64),
        records["lat"].astype(np.float64),
    )


def read_rules(
    conn: psycopg2.extensions.connection, table: Callable[[str], sql.Identifier]
) -> tuple[dict[int, dict[str, str]], Relations]:
    """The barrier nodes and the turn restrictions (few: read whole)."""
    with conn.cursor() as cur:
        cur.execute(_query("barriers.sql", barriers=table(schema.BARRIERS_TABLE)))
        barriers = {int(osm_id): tags or {} for osm_id, tags in cur.fetchall()}
        cur.execute(_query("restrictions.sql", restrictions=table(schema.RESTRICTIONS_TABLE)))
        restrictions = [
            (int(osm_id), tags or {}, members or []) for osm_id, tags, members in cur.fetchall()
        ]
    return barriers, restrictions


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    # Squares as products: routing.arrays compiles this function with numba, which makes
    # ``** 2`` a product where Python calls pow(); the two may differ in the last bit.
    sp, sl = math.sin(dp / 2), math.sin(dl / 2)
    a = sp * sp + math.cos(p1) * math.cos(p2) * (sl * sl)
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(a)))


def bearing(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial compass bearing (0-360, 0 = north) from the first point to the second."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0

"""Updates: OSM changes applied to the served data in one transaction, and the tiles they touch."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import osmium
import osmium.index
import osmium.osm.mutable
import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.changes import ChangeSet, read_changes
from osmimport.copybuffer import copy_value
from osmimport.database import connect, load_sql, table_exists
from osmimport.dataversion import NOTIFY_CHANNEL, read_meta_with
from osmimport.errors import OsmImportError
from osmimport.importer import (
    PREPARE,
    BeforeSwapHook,
    generalised_queries,
    import_lock,
    layer_table_query,
)
from osmimport.loader import (
    KEPT_RAW_TABLES,
    MIDDLE_TABLES,
    RAW_PREFIX,
    Loader,
    create_raw_tables,
    relation_makes_rows,
)
from osmimport.settings import CommuneSettings

#: Where an update stages its rows (committed, so the routing build can read them) and the
#: road network it routes on: views of the served tables with the update applied.
WORK_SCHEMA = "osm_update"
NETWORK_SCHEMA = "osm_update_network"
COMMUNES_SCHEMA = "osm_update_communes"
#: The table of NETWORK_SCHEMA listing the tags of the roads ('w') and restrictions ('r') the
#: update changes: the routing build keeps the data of a profile none of them concerns.
CHANGED_ROADS_TABLE = "changed_roads"

#: An update stages the routing data's chunk rows in the served table, under the profile's
#: name and this suffix: applying it renames them (no copy of their bytes).
STAGED_ROUTING_SUFFIX = "+staged"

#: The meta keys an update writes: the replication state, the data's timestamp, the last update.
REPLICATION_KEY = "replication"
TIMESTAMP_KEY = "data_timestamp"
UPDATED_KEY = "last_update"

#: An update's data version is its import's, this separator, and its own stamp: tiles keep
#: ETags keyed by the import across updates (see ``lineage``).
VERSION_SEPARATOR = "+"

#: Tiles whose content changed, per data version (read by servers to drop them from caches).
EXPIRED_TABLE = "expired_tiles"
#: Expiry covers zooms 0..MAX_ZOOM; a geometry dirties the tiles its bbox, grown by the tile
#: buffer (64 of 4096 tile units by default), touches.
EXPIRE_BUFFER = 64 / 4096
EARTH_HALF = 20037508.342789244

#: A change this far (a share of the commune's size) outside a commune's bounding box still
#: changes its town plan (its pages show some of the surroundings).
PLAN_MARGIN = 0.1
#: The data version each commune's town plan was last changed at by an update.
PLAN_VERSIONS_TABLE = "plan_versions"

#: The network tables an update changes besides the layers (counted again afterwards).
NETWORK_TABLES = (
    schema.ROAD_WAYS_TABLE,
    schema.ROAD_NODES_TABLE,
    schema.BARRIERS_TABLE,
    schema.RESTRICTIONS_TABLE,
)


@dataclass
class ReplicationState:
    """Where a replication feed stands: its URL, sequence number and timestamp."""

    url: str
    sequence: int
    timestamp: datetime
    #: The sequence the data was at when the diffs were fetched (None: not known then).
    previous: int | None = None


@dataclass
class UpdateSummary:
    """What an update did."""

    data_version: str
    previous_version: str
    objects: int
    rows_deleted: dict[str, int]
    rows_added: dict[str, int]
    expired: list[tuple[int, int, int]]
    #: The communes whose own row or whose content changed (their town plans are out of date).
    communes: list[int]
    elapsed: float
    routing_seconds: float = 0.0
    replication: ReplicationState | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def lineage(version: str) -> str:
    """The data version of the import an (updated) data version comes from."""
    return version.split(VERSION_SEPARATOR, 1)[0]


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("\\:", ":")
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def data_timestamp(meta: dict[str, Any]) -> datetime | None:
    """How recent the loaded data is: the last update's, else the newest source file header's."""
    stamp = _parse_time(meta.get(TIMESTAMP_KEY))
    if stamp is not None:
        return stamp
    found = [_parse_time(s.get("timestamp")) for s in meta.get("sources") or []]
    known = [s for s in found if s is not None]
    return max(known) if known else None


def _node_store(meta: dict[str, Any], node_dir: Path) -> Path:
    name = meta.get(schema.NODE_STORE_KEY)
    path = node_dir / str(name) if name else None
    if path is None or not path.is_file():
        raise OsmImportError(
            "the loaded data keeps no node locations for updates (imported without them, or "
            f"its file is gone from {node_dir}): import it again with `fondplan import FILE`"
        )
    return path


#: The function whose values over ``mid_ways.nodes`` are indexed (way_node_index.sql).
NODE_BUCKETS = "node_buckets"


def _has_middle(cur: psycopg2.extensions.cursor) -> bool:
    return all(table_exists(cur, schema.SCHEMA, t) for t in [*MIDDLE_TABLES, *KEPT_RAW_TABLES])


def _index_node_buckets(cur: psycopg2.extensions.cursor) -> None:
    """Add the way-node index of way_node_index.sql to data imported before it existed."""
    name = f"{schema.SCHEMA}.{NODE_BUCKETS}(bigint[])"
    cur.execute("SELECT to_regprocedure(%s) IS NOT NULL", (name,))
    row = cur.fetchone()
    if row is not None and row[0]:
        return
    cur.execute(sql.SQL("SET search_path TO {}, public").format(_ident(schema.SCHEMA)))
    cur.execute(load_sql("osmimport", "way_node_index.sql"))
    cur.execute("RESET search_path")


def _run(cur: psycopg2.extensions.cursor, name: str, params: dict[str, Any] | None = None) -> None:
    """Run an update SQL file; {work}, {live}, {net}, {new} name the schemas."""
    cur.execute(_statement(load_sql("osmimport", name)), params)


def _statement(text: str) -> sql.Composed:
    return sql.SQL(text).format(
        work=_ident(WORK_SCHEMA),
        live=_ident(schema.SCHEMA),
        net=_ident(NETWORK_SCHEMA),
        new=_ident(COMMUNES_SCHEMA),
    )


#: A statement of an update SQL file deleting or adding rows of a served table.
_CHANGING = re.compile(r"^(DELETE FROM|INSERT INTO) \{live\}\.(\w+)", re.MULTILINE)


def _run_counted(cur: psycopg2.extensions.cursor, name: str) -> dict[str, int]:
    """Run an update SQL file statement by statement; the rows each served table it deletes
    from or inserts into gained (negative: lost)."""
    gained: dict[str, int] = {}
    for text in load_sql("osmimport", name).split(";\n"):
        if not text.strip():
            continue
        cur.execute(_statement(text))
        found = _CHANGING.search(text)
        if found is not None and "ON CONFLICT" not in text:
            sign = -1 if found[1] == "DELETE FROM" else 1
            gained[found[2]] = gained.get(found[2], 0) + sign * cur.rowcount
    return gained


#: Above this many ids, the rows holding one are found by a scan and a hash join rather than
#: one index probe per id.
PROBE_LIMIT = 5000


def _ids(
    cur: psycopg2.extensions.cursor, query: sql.Composable, params: dict[str, Any]
) -> set[int]:
    cur.execute(query, params)
    return {int(row[0]) for row in cur.fetchall()}


def _by_index(
    cur: psycopg2.extensions.cursor, query: sql.Composable, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of ``query``, read through the GIN index of an array overlap (``&&``).

    The planner overestimates what && with a long array keeps and would rather scan the
    table, comparing every row's array with every id given.
    """
    cur.execute("SELECT set_config('enable_seqscan', 'off', true)")
    cur.execute(query, params)
    rows = list(cur.fetchall())
    cur.execute("SELECT set_config('enable_seqscan', 'on', true)")
    return rows


def _holding(
    cur: psycopg2.extensions.cursor,
    table: str,
    column: str,
    ids: set[int],
    *,
    buckets: bool = False,
) -> set[int]:
    """The ids of the middle rows of ``table`` whose array ``column`` holds one of ``ids``.

    ``buckets``: the index is on the :data:`NODE_BUCKETS` of ``column``, not on it.
    """
    if not ids:
        return set()
    target = _ident(schema.SCHEMA, table)
    if len(ids) <= PROBE_LIMIT:
        overlap = "{column} && %(ids)s::bigint[]"
        if buckets:
            overlap = "{bucket}({column}) && {bucket}(%(ids)s::bigint[]) AND " + overlap
        query = sql.SQL("SELECT id FROM {target} WHERE " + overlap).format(
            target=target, column=_ident(column), bucket=_ident(schema.SCHEMA, NODE_BUCKETS)
        )
        rows = _by_index(cur, query, {"ids": sorted(ids)})
        return {int(row[0]) for row in rows}
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS update_ids (id bigint) ON COMMIT DROP")
    cur.execute("TRUNCATE update_ids")
    cur.copy_expert("COPY update_ids FROM STDIN", StringIO("".join(f"{i}\n" for i in ids)))
    cur.execute("ANALYZE update_ids")
    return _ids(
        cur,
        sql.SQL(
            "SELECT DISTINCT t.id FROM {} t CROSS JOIN LATERAL unnest(t.{}) AS m(ref) "
            "WHERE m.ref IN (SELECT id FROM update_ids)"
        ).format(target, _ident(column)),
        {},
    )


class Update:
    """One update: the affected objects found, re-made through the import's loader, applied."""

    def __init__(
        self,
        url: str,
        changes: ChangeSet,
        node_store: Path,
        *,
        communes: CommuneSettings,
        before_swap: Sequence[BeforeSwapHook] = (),
        progress: bool = False,
        previous_version: str = "",
    ) -> None:
        self.url = url
        self.changes = changes
        self.node_store = node_store
        self.communes = communes
        self.before_swap = before_swap
        self.progress = progress
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        self.version = f"{lineage(previous_version)}{VERSION_SEPARATOR}{stamp}"
        self.timings: dict[str, float] = {}
        self.deleted: dict[str, int] = {}
        self.added: dict[str, int] = {}
        #: The rows the network and kept raw tables gained (negative: lost).
        self.gained: dict[str, int] = {}
        self._clock = time.monotonic()
        self._preparing: threading.Thread | None = None

    def lap(self, name: str) -> None:
        """Record the time since the last lap as step ``name``."""
        now = time.monotonic()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now
        if self.progress:
            print(f"update: {name} {self.timings[name]:.1f}s", file=sys.stderr, flush=True)

    # -- phase A: stage everything in WORK_SCHEMA (committed; the served data is untouched) --

    def stage(self, cur: psycopg2.extensions.cursor, tmp: Path) -> None:
        """Find the affected objects and re-make their rows in the work schema."""
        work = _ident(WORK_SCHEMA)
        drop_work_schemas(cur)
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(work))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(_ident(NETWORK_SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(_ident(COMMUNES_SCHEMA)))
        ways, relations, row_ways, affected_relations = self._affected(cur)
        self.lap("find affected")
        self._save_sets(cur, row_ways, affected_relations)
        mini = tmp / "update.osm.pbf"
        self._write_objects(cur, mini, ways, relations)
        self.lap("write objects")
        create_raw_tables(cur, WORK_SCHEMA)
        loader = Loader(cur, WORK_SCHEMA, self.communes.all_levels())
        loader.run(mini)
        self.lap("load")
        _run(cur, "update_filter.sql")
        for layer in schema.LAYERS:
            cur.execute(
                sql.SQL(
                    "DELETE FROM {raw} r WHERE r.osm_type = 'r' AND NOT EXISTS (SELECT 1 FROM "
                    "{affected} a WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id)"
                ).format(
                    raw=_ident(WORK_SCHEMA, RAW_PREFIX + layer.name),
                    affected=_ident(WORK_SCHEMA, "affected"),
                )
            )
        cur.execute(sql.SQL("SET search_path TO {}, public").format(work))
        for layer in schema.LAYERS:
            cur.execute(layer_table_query(WORK_SCHEMA, layer.name))
            post = f"layer_{layer.name}.sql"
            try:
                cur.execute(load_sql("osmimport", post))
            except FileNotFoundError:
                pass
        cur.execute(load_sql("osmimport", "network.sql"))
        cur.execute("RESET search_path")
        _run(cur, "update_network.sql")
        for table in (schema.ROUTING_PROFILES_TABLE, schema.ROUTING_DATA_TABLE):
            # The routing build writes there and apply copies: staging needs no WAL.
            if table_exists(cur, schema.SCHEMA, table):
                cur.execute(
                    sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING ALL)").format(
                        _ident(NETWORK_SCHEMA, table), _ident(schema.SCHEMA, table)
                    )
                )
        self.lap("build rows")

    def _affected(
        self, cur: psycopg2.extensions.cursor
    ) -> tuple[dict[int, tuple[list[int], dict[str, str]]], dict[int, Any], set[int], set[int]]:
        """(ways to re-make, relations to read with them, way rows replaced, relations replaced)."""
        changes = self.changes
        mid = schema.SCHEMA
        changed_ways = set(changes.ways) | _holding(
            cur, "mid_ways", "nodes", set(changes.nodes), buckets=True
        )
        affected_relations = set(changes.relations) | _holding(
            cur, "mid_relations", "way_ids", changed_ways
        )
        members = _ids(
            cur,
            sql.SQL("SELECT unnest(way_ids) FROM {} WHERE id = ANY(%(ids)s::bigint[])").format(
                _ident(mid, "mid_relations")
            ),
            {"ids": sorted(affected_relations)},
        )
        for state in changes.relations.values():
            if state is not None:
                members.update(ref for kind, ref, _ in state[0] if kind == "w")
        row_ways = changed_ways | members
        ways: dict[int, tuple[list[int], dict[str, str]]] = {}
        stored = sorted(row_ways - set(changes.ways))
        cur.execute(
            sql.SQL(
                "SELECT DISTINCT ON (id) id, nodes, tags FROM {} WHERE id = ANY(%(ids)s::bigint[])"
            ).format(_ident(mid, "mid_ways")),
            {"ids": stored},
        )
        for way_id, refs, tags in cur.fetchall():
            ways[int(way_id)] = (list(refs), tags or {})
        for way_id, way_state in changes.ways.items():
            if way_state is not None:
                ways[way_id] = way_state
        # The relations a re-made way's rows depend on (boundary levels, communes, disputes).
        relations: dict[int, Any] = {}
        context = _by_index(
            cur,
            sql.SQL(
                "SELECT DISTINCT ON (id) id, members, tags FROM {} "
                "WHERE way_ids && %(ways)s::bigint[] AND NOT id = ANY(%(changed)s::bigint[])"
            ).format(_ident(mid, "mid_relations")),
            {"ways": sorted(ways), "changed": sorted(changes.relations)},
        )
        for rel_id, rel_members, tags in context:
            relations[int(rel_id)] = ([(m[0], int(m[1]), m[2]) for m in rel_members], tags or {})
        for rel_id, rel_state in changes.relations.items():
            if rel_state is not None and relation_makes_rows(rel_state[1]):
                relations[rel_id] = rel_state
        return ways, relations, row_ways, affected_relations

    def _save_sets(
        self, cur: psycopg2.extensions.cursor, row_ways: set[int], relations: set[int]
    ) -> None:
        """The work schema's record of what changes: objects replaced, middle rows to write."""
        _run(cur, "update_tables.sql")
        rows = (
            [("n", i) for i in self.changes.nodes]
            + [("w", i) for i in row_ways]
            + [("r", i) for i in relations]
        )
        _copy(cur, "affected", ("osm_type", "osm_id"), rows)
        _copy(
            cur,
            "changed",
            ("osm_type", "osm_id"),
            [("n", i) for i in self.changes.nodes]
            + [("w", i) for i in self.changes.ways]
            + [("r", i) for i in self.changes.relations],
        )
        _copy(
            cur,
            "mid_ways",
            ("id", "nodes", "tags"),
            [
                (i, _array(state[0]), json.dumps(state[1], ensure_ascii=False))
                for i, state in self.changes.ways.items()
                if state is not None
            ],
        )
        _copy(
            cur,
            "mid_relations",
            ("id", "tags", "members", "way_ids"),
            [
                (
                    i,
                    json.dumps(state[1], ensure_ascii=False),
                    json.dumps([list(m) for m in state[0]], separators=(",", ":")),
                    _array([ref for kind, ref, _ in state[0] if kind == "w"]),
                )
                for i, state in self.changes.relations.items()
                if state is not None and relation_makes_rows(state[1])
            ],
        )
        _copy(
            cur,
            "mid_nodes",
            ("id", "lon", "lat"),
            [
                (i, *(state[0] if state is not None and state[0] is not None else (None, None)))
                for i, state in self.changes.nodes.items()
            ],
        )
        cur.execute(sql.SQL("ANALYZE {}").format(_ident(WORK_SCHEMA, "affected")))

    def _write_objects(
        self,
        cur: psycopg2.extensions.cursor,
        target: Path,
        ways: dict[int, tuple[list[int], dict[str, str]]],
        relations: dict[int, Any],
    ) -> None:
        """A sorted OSM file of the objects to re-make and what they need (node locations)."""
        changes = self.changes
        wanted = {ref for refs, _ in ways.values() for ref in refs}
        tagged = {i: s for i, s in changes.nodes.items() if s is not None}
        wanted |= set(tagged)
        locations: dict[int, tuple[float, float] | None] = {}
        for node_id in wanted & set(changes.nodes):
            state = changes.nodes[node_id]
            locations[node_id] = None if state is None else state[0]
        rest = sorted(wanted - set(changes.nodes))
        cur.execute(
            sql.SQL("SELECT id, lon, lat FROM {} WHERE id = ANY(%(ids)s::bigint[])").format(
                _ident(schema.SCHEMA, "mid_nodes")
            ),
            {"ids": rest},
        )
        for node_id, lon, lat in cur.fetchall():
            locations[int(node_id)] = None if lon is None else (float(lon), float(lat))
        store = osmium.index.create_map(f"sparse_file_array,{self.node_store}")
        try:
            for node_id in rest:
                if node_id in locations:
                    continue
                try:
                    location = store.get(node_id)
                except KeyError:
                    continue
                locations[node_id] = (location.lon, location.lat)
        finally:
            del store
        writer = osmium.SimpleWriter(str(target))
        try:
            for node_id in sorted(locations):
                where = locations[node_id]
                if where is None:
                    continue
                tags = tagged[node_id][1] if node_id in tagged else {}
                writer.add_node(
                    osmium.osm.mutable.Node(id=node_id, version=1, location=where, tags=tags)
                )
            for way_id in sorted(ways):
                refs, tags = ways[way_id]
                writer.add_way(osmium.osm.mutable.Way(id=way_id, version=1, nodes=refs, tags=tags))
            for rel_id in sorted(relations):
                members, tags = relations[rel_id]
                writer.add_relation(
                    osmium.osm.mutable.Relation(id=rel_id, version=1, members=members, tags=tags)
                )
        finally:
            writer.close()

    def prepare(self) -> None:
        """Start the hooks' preparation (see :data:`osmimport.importer.PREPARE`) in a thread,
        beside the staging: a hook waits for what it needs of it (a hook that has nothing to
        do starts at once), the update for all of it before it ends."""
        steps: list[Callable[[str, Path], None]] = [
            getattr(hook, PREPARE) for hook in self.before_swap if hasattr(hook, PREPARE)
        ]
        if not steps:
            return
        keep = self.node_store.parent

        def run() -> None:
            for step in steps:
                try:
                    step(self.url, keep)
                except Exception as exc:  # only a head start: the hook does it all again
                    print(f"update: a hook could not prepare: {exc!r}", file=sys.stderr)

        self._preparing = threading.Thread(target=run, name="update-prepare", daemon=True)
        self._preparing.start()

    def prepared(self) -> None:
        """Wait for :meth:`prepare`'s thread, if any."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None

    def build_routing(self) -> float:
        """The routing data of the updated network, built by the import's hooks beside it."""
        started = time.monotonic()
        for build in self.before_swap:
            build(self.url, NETWORK_SCHEMA, self.version, self.node_store.parent)
        return time.monotonic() - started

    # -- phase B: one transaction applies the staged rows to the served schema --

    def apply(self, cur: psycopg2.extensions.cursor) -> list[int]:
        """Replace the affected rows of every table; the communes whose plans changed."""
        live, work = schema.SCHEMA, WORK_SCHEMA
        for layer in schema.LAYERS:
            groups = _group_columns(layer)
            if groups:
                # The merged-line groups touched: their generalised rows are made again.
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE {groups} AS SELECT DISTINCT {cols} FROM ("
                        "SELECT {cols} FROM {live} l WHERE EXISTS (SELECT 1 FROM {affected} a "
                        "WHERE a.osm_type = l.osm_type AND a.osm_id = l.osm_id) "
                        "UNION ALL SELECT {cols} FROM {new}) g"
                    ).format(
                        groups=_ident(work, f"groups_{layer.name}"),
                        cols=sql.SQL(", ").join(_ident(c) for c in groups),
                        live=_ident(live, layer.name),
                        affected=_ident(work, "affected"),
                        new=_ident(work, layer.name),
                    )
                )
            self._replace(cur, layer.name, layer.name, 14)
            self._regeneralise(cur, layer, groups)
        self.lap("apply layers")
        # Asked before the kept raw rows are replaced: a commune deleted leaves none after.
        _run(cur, "update_communes_touched.sql")
        row = cur.fetchone()
        communes_touched = bool(row and row[0])
        self.gained = _run_counted(cur, "update_apply.sql")
        self.lap("apply network and middle")
        self._communes(cur, communes_touched)
        self.lap("communes")
        self._routing(cur)
        self.lap("apply routing")
        _run(
            cur,
            "update_plans.sql",
            {"maxzoom": schema.MAX_ZOOM, "margin": PLAN_MARGIN, "version": self.version},
        )
        return [int(row[0]) for row in cur.fetchall()]

    def _replace(self, cur: psycopg2.extensions.cursor, table: str, new: str, maxzoom: int) -> None:
        cur.execute(
            sql.SQL(
                "WITH gone AS (DELETE FROM {live} l USING {affected} a "
                "WHERE a.osm_type = l.osm_type AND a.osm_id = l.osm_id "
                "RETURNING l.geom, l.minzoom) "
                "INSERT INTO {dirty} SELECT geom, minzoom, %(maxzoom)s FROM gone"
            ).format(
                live=_ident(schema.SCHEMA, table),
                affected=_ident(WORK_SCHEMA, "affected"),
                dirty=_ident(WORK_SCHEMA, "dirty"),
            ),
            {"maxzoom": maxzoom},
        )
        self.deleted[table] = cur.rowcount
        cur.execute(
            sql.SQL(
                "WITH made AS (INSERT INTO {live} SELECT * FROM {new} RETURNING geom, minzoom) "
                "INSERT INTO {dirty} SELECT geom, minzoom, %(maxzoom)s FROM made"
            ).format(
                live=_ident(schema.SCHEMA, table),
                new=_ident(WORK_SCHEMA, new),
                dirty=_ident(WORK_SCHEMA, "dirty"),
            ),
            {"maxzoom": maxzoom},
        )
        self.added[table] = cur.rowcount

    def _regeneralise(
        self, cur: psycopg2.extensions.cursor, layer: schema.Layer, groups: list[str]
    ) -> None:
        """The generalised rows of the touched objects (polygons) or groups (merged lines)."""
        if not layer.generalised:
            return
        work = WORK_SCHEMA
        if groups:
            match = sql.SQL(" AND ").join(
                sql.SQL("t.{c} IS NOT DISTINCT FROM b.{c}").format(c=_ident(c)) for c in groups
            )
            only = sql.SQL("EXISTS (SELECT 1 FROM {t} t WHERE {m})").format(
                t=_ident(work, f"groups_{layer.name}"), m=match
            )
        else:
            only = sql.SQL(
                "EXISTS (SELECT 1 FROM {a} a WHERE a.osm_type = b.osm_type AND a.osm_id = b.osm_id)"
            ).format(a=_ident(work, "affected"))
        for table, (query, params) in generalised_queries(
            schema.SCHEMA, layer, insert=True, only=only
        ):
            zoom = int(table.rsplit("_z", 1)[1])
            if not table_exists(cur, schema.SCHEMA, table):
                continue
            cur.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {g} b WHERE {only} RETURNING geom, minzoom) "
                    "INSERT INTO {dirty} SELECT geom, minzoom, %(zoom)s FROM gone"
                ).format(g=_ident(schema.SCHEMA, table), only=only, dirty=_ident(work, "dirty")),
                {"zoom": zoom},
            )
            self.deleted[table] = cur.rowcount
            cur.execute(query, params)
            self.added[table] = cur.rowcount
            cur.execute(
                sql.SQL(
                    "INSERT INTO {dirty} SELECT geom, minzoom, %(zoom)s FROM {g} b WHERE {only}"
                ).format(g=_ident(schema.SCHEMA, table), only=only, dirty=_ident(work, "dirty")),
                {"zoom": zoom},
            )

    def _communes(self, cur: psycopg2.extensions.cursor, touched: bool) -> None:
        """The communes made again from the updated raw tables replace those that differ
        (when the update ``touched`` what they are made of)."""
        if not touched:
            cur.execute(
                sql.SQL("CREATE TABLE {} (osm_id bigint)").format(
                    _ident(COMMUNES_SCHEMA, "changed")
                )
            )
            return
        cur.execute(
            sql.SQL("SET search_path TO {}, {}, public").format(
                _ident(COMMUNES_SCHEMA), _ident(schema.SCHEMA)
            )
        )
        cur.execute(
            load_sql("osmimport", "communes.sql"),
            {
                "levels": json.dumps(self.communes.levels),
                "default_levels": json.dumps(self.communes.default_levels),
            },
        )
        cur.execute("RESET search_path")
        _run(cur, "update_communes.sql")

    def _routing(self, cur: psycopg2.extensions.cursor) -> None:
        """The routing data built (or kept) on the updated network replaces the served one."""
        if table_exists(cur, NETWORK_SCHEMA, schema.ROUTING_PROFILES_TABLE):
            _run(cur, "update_routing.sql", {"suffix": STAGED_ROUTING_SUFFIX})

    def expired_tiles(self, cur: psycopg2.extensions.cursor) -> list[tuple[int, int, int]]:
        """Every tile (z0-14, tile buffer included) a deleted or added row's bbox touches."""
        _run(
            cur,
            "update_expire.sql",
            {"buffer": EXPIRE_BUFFER, "half": EARTH_HALF, "maxzoom": schema.MAX_ZOOM},
        )
        return [(int(z), int(x), int(y)) for z, x, y in cur.fetchall()]


def _group_columns(layer: schema.Layer) -> list[str]:
    rule = layer.generalisation
    if not layer.generalised or not rule.merge:
        return []
    return [*rule.group_by, "minzoom"]


def _array(values: Iterable[int]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


def _copy(
    cur: psycopg2.extensions.cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    data = StringIO("".join(["\t".join([copy_value(v) for v in row]) + "\n" for row in rows]))
    cur.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN")
        .format(_ident(WORK_SCHEMA, table), sql.SQL(", ").join(_ident(c) for c in columns))
        .as_string(cur),
        data,
    )


def drop_work_schemas(cur: psycopg2.extensions.cursor) -> None:
    """Remove what an earlier (finished or killed) update staged."""
    for name in (WORK_SCHEMA, NETWORK_SCHEMA, COMMUNES_SCHEMA):
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(_ident(name)))
    if table_exists(cur, schema.SCHEMA, schema.ROUTING_DATA_TABLE):
        _run(cur, "update_routing_drop.sql", {"suffix": STAGED_ROUTING_SUFFIX})


def _drop_after_failure(conn: psycopg2.extensions.connection) -> None:
    """Undo what a failed update did and remove what it staged (a killed one's stays until
    the next update starts)."""
    try:
        conn.rollback()
        with conn.cursor() as cur:
            drop_work_schemas(cur)
        conn.commit()
    except psycopg2.Error:
        pass


def run_update(
    url: str,
    files: Sequence[Path],
    *,
    node_dir: Path,
    before_swap: Sequence[BeforeSwapHook] = (),
    communes: CommuneSettings | None = None,
    replication: ReplicationState | None = None,
    expire_list: Path | None = None,
    progress: bool = False,
) -> UpdateSummary:
    """Apply the change ``files`` (in order) to the data served at ``url``.

    Everything is read and staged first; one transaction then replaces the rows of the
    affected objects in every table, the middle tables, the routing data (built by the
    ``before_swap`` hooks on the updated network), the replication state and the data
    version, and notifies the servers. A failed or killed update leaves the data as it was.
    """
    started = time.monotonic()
    if not files:
        raise OsmImportError("no change file given")
    changes = read_changes([Path(f) for f in files])
    with import_lock(url):
        conn = connect(url)
        update: Update | None = None
        try:
            with conn.cursor() as cur:
                meta = read_meta_with(cur)
                if meta is None:
                    raise OsmImportError("nothing is loaded: run `fondplan import FILE` first")
                if not _has_middle(cur):
                    raise OsmImportError(
                        "the loaded data was imported without the tables updates need: "
                        "import it again with `fondplan import FILE`"
                    )
                _index_node_buckets(cur)
                node_store = _node_store(meta, node_dir)
                _check_times(meta, changes, replication)
                _check_sequence(meta, replication)
                update = Update(
                    url,
                    changes,
                    node_store,
                    communes=communes or CommuneSettings.model_construct(),
                    before_swap=before_swap,
                    progress=progress,
                    previous_version=str(meta.get("data_version") or "none"),
                )
                update.prepare()
                cur.execute("SET jit TO off")
                cur.execute("SET random_page_cost TO 1.1")
                with tempfile.TemporaryDirectory(prefix="fondplan-update-", dir=node_dir) as tmp:
                    update.stage(cur, Path(tmp))
                conn.commit()
                routing_seconds = update.build_routing()
                update.lap("routing build")
                # One transaction from here: a kill or an error leaves everything as it was.
                changed_communes = update.apply(cur)
                expired = update.expired_tiles(cur)
                update.lap("expiry")
                _store_expired(cur, update.version)
                _write_meta(cur, meta, update, changes, replication)
                cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, update.version))
                conn.commit()
                drop_work_schemas(cur)
                conn.commit()
        except BaseException:
            _drop_after_failure(conn)
            raise
        finally:
            if update is not None:
                # Not reading the kept files once another update may write them.
                update.prepared()
            conn.close()
    if expire_list is not None:
        write_expire_list(expire_list, expired)
    return UpdateSummary(
        data_version=update.version,
        previous_version=str(meta.get("data_version")),
        objects=changes.size,
        rows_deleted=update.deleted,
        rows_added=update.added,
        expired=expired,
        communes=changed_communes,
        elapsed=time.monotonic() - started,
        routing_seconds=routing_seconds,
        replication=replication,
        timings=update.timings,
    )


def _check_times(
    meta: dict[str, Any], changes: ChangeSet, replication: ReplicationState | None
) -> None:
    """Refuse a change file older than the data (a feed's order is its sequence numbers)."""
    current = data_timestamp(meta)
    if current is None or replication is not None:
        return
    for path, newest in changes.files:
        if newest is not None and newest < current:
            raise OsmImportError(
                f"{path}: its changes (newest edit {newest.isoformat()}) are older than the "
                f"loaded data ({current.isoformat()}); nothing was changed"
            )


def _check_sequence(meta: dict[str, Any], replication: ReplicationState | None) -> None:
    """Refuse diffs fetched for a sequence the data is no longer at (another update ran)."""
    if replication is None:
        return
    known = (meta.get(REPLICATION_KEY) or {}).get("sequence")
    if known is not None and replication.previous is not None and known != replication.previous:
        raise OsmImportError(
            f"the data moved from sequence {replication.previous} to {known} while the diffs "
            "were fetched (another update ran); nothing was changed: run the update again"
        )


def _write_meta(
    cur: psycopg2.extensions.cursor,
    meta: dict[str, Any],
    update: Update,
    changes: ChangeSet,
    replication: ReplicationState | None,
) -> None:
    counts: dict[str, int] = dict(meta.get("counts") or {})
    for table in counts:
        if table in NETWORK_TABLES and table in update.gained:
            # Counted from the rows replaced: counting the table would read it whole.
            counts[table] += update.gained[table]
        elif table in update.added or table in update.deleted:
            counts[table] += update.added.get(table, 0) - update.deleted.get(table, 0)
        elif table in NETWORK_TABLES or table == schema.COMMUNES_TABLE:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(schema.SCHEMA, table)))
            row = cur.fetchone()
            counts[table] = int(row[0]) if row else 0
    stamps = [s for s in (data_timestamp(meta), changes.newest) if s is not None]
    if replication is not None:
        stamps.append(replication.timestamp)
    values: dict[str, Any] = {
        "data_version": update.version,
        "counts": counts,
        UPDATED_KEY: {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "objects": changes.size,
            "previous_version": meta.get("data_version"),
        },
    }
    if stamps:
        values[TIMESTAMP_KEY] = max(stamps).isoformat()
    if replication is not None:
        values[REPLICATION_KEY] = {
            "url": replication.url,
            "sequence": replication.sequence,
            "timestamp": replication.timestamp.isoformat(),
        }
    for key, value in values.items():
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ).format(_ident(schema.SCHEMA, schema.META_TABLE)),
            (key, json.dumps(value)),
        )


def _store_expired(cur: psycopg2.extensions.cursor, version: str) -> None:
    """Keep the tiles the update expired with its data version (servers drop them)."""
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (data_version text NOT NULL, "
            "previous_version text, z smallint NOT NULL, x integer NOT NULL, y integer NOT NULL)"
        ).format(_ident(schema.SCHEMA, EXPIRED_TABLE))
    )
    # Only the last update's list is kept: a server further behind drops its whole cache.
    cur.execute(sql.SQL("DELETE FROM {}").format(_ident(schema.SCHEMA, EXPIRED_TABLE)))
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (data_version, previous_version, z, x, y) "
            "SELECT %(version)s, (SELECT value #>> '{{}}' FROM {} WHERE key = 'data_version'), "
            "z, x, y FROM {}"
        ).format(
            _ident(schema.SCHEMA, EXPIRED_TABLE),
            _ident(schema.SCHEMA, schema.META_TABLE),
            _ident(WORK_SCHEMA, "expired"),
        ),
        {"version": version},
    )


def expired_tiles(url: str, previous: str, version: str) -> set[tuple[int, int, int]] | None:
    """The tiles the update from data version ``previous`` to ``version`` changed.

    None when ``version`` was not made by an update of ``previous`` (an import, or a server
    more than one update behind): then every cached tile is out of date.
    """
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            if not table_exists(cur, schema.SCHEMA, EXPIRED_TABLE):
                return None
            cur.execute(
                sql.SQL("SELECT previous_version, z, x, y FROM {} WHERE data_version = %s").format(
                    _ident(schema.SCHEMA, EXPIRED_TABLE)
                ),
                (version,),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    made = {str(r[0]) for r in rows}
    if made and made != {previous}:
        return None
    if not rows:
        # No row at all: an update that changed no tile, or no update; the meta table tells.
        return _unchanged_update(url, previous, version)
    return {(int(z), int(x), int(y)) for _, z, x, y in rows}


def _unchanged_update(url: str, previous: str, version: str) -> set[tuple[int, int, int]] | None:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            meta = read_meta_with(cur) or {}
    finally:
        conn.close()
    last = meta.get(UPDATED_KEY) or {}
    if meta.get("data_version") == version and last.get("previous_version") == previous:
        return set()
    return None


def plan_version(conn: psycopg2.extensions.connection, osm_id: int, version: str) -> str:
    """The data version the town plan of commune ``osm_id`` was last changed at, for the data
    at ``version``: that of the last update touching it, else its import's. Plans cached by
    it stay valid (and keep their ETag) across updates elsewhere."""
    with conn.cursor() as cur:
        if not table_exists(cur, schema.SCHEMA, PLAN_VERSIONS_TABLE):
            return lineage(version)
        cur.execute(
            sql.SQL("SELECT data_version FROM {} WHERE osm_id = %s").format(
                _ident(schema.SCHEMA, PLAN_VERSIONS_TABLE)
            ),
            (osm_id,),
        )
        row = cur.fetchone()
    changed = str(row[0]) if row else None
    if changed is None or lineage(changed) != lineage(version):
        return lineage(version)
    return changed


def write_expire_list(path: Path, tiles: Sequence[tuple[int, int, int]]) -> None:
    """Append ``z/x/y`` lines to ``path`` (as osm2pgsql does: whoever purges empties it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        stream.write("".join(f"{z}/{x}/{y}\n" for z, x, y in tiles))


def format_update(summary: UpdateSummary) -> str:
    """The end-of-update report: objects, rows replaced per table, tiles expired, time."""
    lines = [
        f"updated data version {summary.previous_version} -> {summary.data_version}: "
        f"{summary.objects:,} objects changed"
    ]
    for table in sorted(set(summary.rows_deleted) | set(summary.rows_added)):
        gone, made = summary.rows_deleted.get(table, 0), summary.rows_added.get(table, 0)
        if gone or made:
            lines.append(f"  {table:<26} -{gone:>8,} +{made:>8,}")
    lines.append(f"tiles expired: {len(summary.expired):,}")
    if summary.communes:
        lines.append(f"communes whose town plan changed: {len(summary.communes):,}")
    if summary.replication is not None:
        lines.append(
            f"replication: sequence {summary.replication.sequence}, "
            f"timestamp {summary.replication.timestamp.isoformat()}"
        )
    lines.append(f"elapsed: {summary.elapsed:.1f}s (routing build {summary.routing_seconds:.1f}s)")
    return "\n".join(lines)

"""The import: OSM files -> staging schema -> post-processing -> one-transaction swap into osm."""

from __future__ import annotations

import bz2
import gzip
import json
import multiprocessing
import os
import pickle
import queue
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.children import stop_pool, term_on_parent_death
from osmimport.database import connect, load_sql
from osmimport.dataversion import NOTIFY_CHANNEL, read_meta_with
from osmimport.errors import OsmImportError
from osmimport.inputs import file_header, osmium_tool, prepare, unsorted_error
from osmimport.loader import (
    KEPT_RAW_TABLES,
    MIDDLE_TABLES,
    RAW_PREFIX,
    RAW_TABLES,
    Loader,
    UnsortedInput,
    create_middle_tables,
    create_raw_tables,
)
from osmimport.middleways import MiddleWays
from osmimport.settings import CommuneSettings

#: pg_advisory_lock key held for the whole import ("fondplan" as an integer).
IMPORT_LOCK_KEY = 0x666F6E64706C616E & 0x7FFFFFFFFFFFFFFF

#: Recognised input formats (the suffix decides, as osmium does).
SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz", ".opl")
#: Change files: applied by ``fondplan update``, never imported.
CHANGE_SUFFIXES = (".osc", ".osc.gz", ".osc.bz2")

#: Node location files: ``<node dir>/nodes-<data version>.cache``.
NODE_STORE_PREFIX = "nodes-"
NODE_STORE_SUFFIX = ".cache"
#: The import's temporary folder (sorted and merged inputs, node locations of a throwaway run).
WORK_DIR_PREFIX = "fondplan-import-"

#: The warning counting turn restrictions whose ways are not all in the extract.
INCOMPLETE_RESTRICTIONS = "turn restrictions with ways missing from the extract, ignored by routing"

#: Connections that build the served tables from the raw ones in parallel.
BUILD_WORKERS = max(2, min(4, os.cpu_count() or 2))

#: One SQL statement and its parameters.
Step = tuple[sql.Composable | str, dict[str, Any] | None]

#: 256-pixel-tile pixel size in EPSG:3857 metres at zoom 0.
PIXEL_Z0 = 40075016.686 / 256


@dataclass
class SourceFile:
    """One input file as recorded in ``osm.meta``."""

    name: str
    size: int
    timestamp: str | None


@dataclass
class ImportSummary:
    """What an import did."""

    data_version: str
    counts: dict[str, int]
    warnings: dict[str, int]
    elapsed: float
    peak_rss_mb: float
    sources: list[SourceFile] = field(default_factory=list)
    bbox: list[float] | None = None

    @property
    def warning_count(self) -> int:
        """All warnings together."""
        return sum(self.warnings.values())


def check_input(path: Path) -> None:
    """Refuse a file that cannot be an OSM extract, saying what is wrong and where."""
    if not path.exists():
        raise OsmImportError(f"{path}: no such file")
    if not path.is_file():
        raise OsmImportError(f"{path}: not a regular file")
    name = path.name.lower()
    if name.endswith(CHANGE_SUFFIXES):
        raise OsmImportError(
            f"{path}: a change file (.osc) is not an extract: apply it to the loaded data with "
            f"`fondplan update --osc {path}`"
        )
    if not name.endswith(SUFFIXES):
        raise OsmImportError(
            f"{path}: unknown format (expected .osm.pbf, .osm, .osm.bz2 or .osm.gz)"
        )
    size = path.stat().st_size
    if size == 0:
        raise OsmImportError(f"{path}: empty file")
    head = _head(path)
    if name.endswith((".osm", ".osm.bz2", ".osm.gz")):
        if not head.lstrip().startswith(b"<"):
            raise OsmImportError(f"{path}: not OSM XML (does not start with '<')")
        if b"<osmChange" in head:
            raise OsmImportError(
                f"{path}: an OSM change file (osmChange), not an extract: apply it to the "
                f"loaded data with `fondplan update --osc {path}`"
            )
    elif name.endswith(".pbf") and head.lstrip().startswith(b"<"):
        raise OsmImportError(f"{path}: looks like XML, not PBF (rename it to .osm)")


def _head(path: Path) -> bytes:
    name = path.name.lower()
    try:
        if name.endswith(".bz2"):
            with bz2.open(path, "rb") as stream:
                return stream.read(256)
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read(256)
    except (OSError, EOFError, ValueError) as exc:
        raise OsmImportError(f"{path}: corrupt compressed file ({exc})") from exc
    with path.open("rb") as stream:
        return stream.read(256)


def read_header(path: Path) -> tuple[str | None, list[float] | None]:
    """The file's timestamp and bounding box ([w, s, e, n]) from its header, if present."""
    header = file_header(path)
    stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp") or None
    box = header.box()
    bbox = None
    if box.valid():
        bbox = [box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat]
    return stamp, bbox


@contextmanager
def import_lock(url: str) -> Iterator[psycopg2.extensions.connection]:
    """A session holding the import advisory lock; a second import fails at once."""
    conn = connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            # A killed import's session may take a moment to end: wait a little for its lock.
            cur.execute("SET lock_timeout = '15s'")
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (IMPORT_LOCK_KEY,))
            except psycopg2.errors.LockNotAvailable as exc:
                raise OsmImportError("another import is running on this database") from exc
        yield conn
    finally:
        conn.close()


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def _geometry_expr(kind: str) -> sql.Composable:
    if kind == "Point":
        return sql.SQL(
            "(CASE WHEN GeometryType(g) = 'POINT' THEN g ELSE ST_PointOnSurface(g) END)"
            "::geometry(Point, 3857)"
        )
    if kind == "MultiPolygon":
        return sql.SQL("ST_Multi(g)::geometry(MultiPolygon, 3857)")
    return sql.SQL("g::geometry(LineString, 3857)")


#: Rows stored along a space-filling curve (PostGIS sorts geometries by the Hilbert index of
#: their box), so a tile reads the few heap pages of its area rather than rows spread over the
#: whole table in OSM id order: the pages a tile touches stay the same however large the region.
SPATIAL_ORDER = sql.SQL(" ORDER BY geom")


def layer_table_query(staging: str, layer: str) -> sql.Composed:
    """The layer table from its raw table: EPSG:3857, typed geometry, way_area from the shape."""
    spec = schema.LAYER_BY_NAME[layer]
    columns: list[sql.Composable] = []
    for name, kind in spec.columns:
        if name == "way_area":
            scale = 1e-4 if layer == "boundary_labels" else 1.0
            columns.append(
                sql.SQL("(ST_Area(g) * {})::real AS way_area").format(sql.Literal(scale))
            )
        else:
            columns.append(sql.SQL("{}::{}").format(_ident(name), sql.SQL(kind)))
    # OFFSET 0 keeps the subquery from being flattened, which would transform once per use of g.
    return sql.SQL(
        "CREATE TABLE {table} AS SELECT osm_type::char(1) AS osm_type, osm_id, "
        "{geom} AS geom, minzoom::smallint AS minzoom, sort_key::real AS sort_key{sep}"
        "{columns} FROM (SELECT r.*, ST_Transform(r.geom, 3857) AS g FROM {raw} r OFFSET 0) s"
        "{order}"
    ).format(
        order=SPATIAL_ORDER,
        table=_ident(staging, layer),
        geom=_geometry_expr(spec.geometry),
        sep=sql.SQL(", " if columns else ""),
        columns=sql.SQL(", ").join(columns),
        raw=_ident(staging, RAW_PREFIX + layer),
    )


def generalised_queries(
    staging: str,
    layer: schema.Layer,
    *,
    insert: bool = False,
    only: sql.Composable | None = None,
) -> list[tuple[str, Step]]:
    """The ``<layer>_z<N>`` tables the schema declares for ``layer``: (table, statement).

    ``insert``: statements adding to existing tables (an update) rather than creating them;
    ``only``: a condition on the base table's rows (alias ``b``) that limits what is made.
    """
    made: list[tuple[str, Step]] = []
    if not layer.generalised:
        return made
    rule = layer.generalisation
    attr_names = list(layer.column_names)
    reset = dict(rule.reset)
    for zoom in sorted(layer.generalised):
        table = f"{layer.name}_z{zoom}"
        tolerance = PIXEL_Z0 / 2**zoom / 2
        if rule.merge:
            query = _merged_lines(
                staging, layer.name, table, attr_names, rule, reset, insert=insert, only=only
            )
            params: dict[str, Any] = {"zoom": zoom, "tolerance": tolerance}
        else:
            query = _simplified_polygons(
                staging, layer.name, table, attr_names, insert=insert, only=only
            )
            params = {
                "zoom": zoom,
                "tolerance": tolerance,
                "min_area": (2 * PIXEL_Z0 / 2**zoom) ** 2,
            }
        made.append((table, (query, params)))
    return made


def _generalised_target(
    staging: str, base: str, table: str, insert: bool, only: sql.Composable | None
) -> dict[str, sql.Composable]:
    """What a generalised table's query fills in: ``{make} {table} {as_}`` (a new table, or
    rows added to it) from ``{base}``, limited by ``{only}`` (`` AND ...``) when given."""
    return {
        "make": sql.SQL("INSERT INTO" if insert else "CREATE TABLE"),
        "as_": sql.SQL("" if insert else "AS"),
        "table": _ident(staging, table),
        "base": _ident(staging, base),
        "only": sql.SQL("") if only is None else sql.SQL(" AND ") + only,
    }


def _merged_lines(
    staging: str,
    base: str,
    table: str,
    attrs: list[str],
    rule: schema.Generalisation,
    reset: dict[str, Any],
    *,
    insert: bool = False,
    only: sql.Composable | None = None,
) -> sql.Composed:
    group = [*rule.group_by, "minzoom"]
    outer: list[sql.Composable] = []
    for name in attrs:
        if name in reset:
            kind = dict(schema.LAYER_BY_NAME[base].columns)[name]
            outer.append(
                sql.SQL("{}::{} AS {}").format(
                    sql.Literal(reset[name]), sql.SQL(kind), _ident(name)
                )
            )
        else:
            outer.append(_ident(name))
    return sql.SQL(
        "{make} {table} {as_} "
        "SELECT 'w'::char(1) AS osm_type, osm_id, "
        "ST_SimplifyPreserveTopology(geom, %(tolerance)s)::geometry(LineString, 3857) AS geom, "
        "minzoom, sort_key, {outer} FROM ("
        "  SELECT min(osm_id) AS osm_id, min(sort_key) AS sort_key, {group}, "
        "  (ST_Dump(ST_LineMerge(ST_Collect(geom)))).geom AS geom "
        "  FROM {base} b WHERE minzoom <= %(zoom)s{only} GROUP BY {group}"
        ") merged WHERE GeometryType(geom) = 'LINESTRING'{order}"
    ).format(
        **_generalised_target(staging, base, table, insert, only),
        order=sql.SQL("") if insert else SPATIAL_ORDER,
        outer=sql.SQL(", ").join(outer),
        group=sql.SQL(", ").join(_ident(g) for g in group),
    )


def _simplified_polygons(
    staging: str,
    base: str,
    table: str,
    attrs: list[str],
    *,
    insert: bool = False,
    only: sql.Composable | None = None,
) -> sql.Composed:
    return sql.SQL(
        "{make} {table} {as_} SELECT osm_type, osm_id, geom, minzoom, sort_key{sep}{cols} "
        "FROM (SELECT osm_type, osm_id, "
        "  ST_Multi(ST_SimplifyPreserveTopology(geom, %(tolerance)s))"
        "    ::geometry(MultiPolygon, 3857) AS geom, minzoom, sort_key{sep}{cols} "
        "  FROM {base} b WHERE minzoom <= %(zoom)s AND ST_Area(geom) >= %(min_area)s{only} "
        "  OFFSET 0) s "
        "WHERE NOT ST_IsEmpty(geom){order}"
    ).format(
        **_generalised_target(staging, base, table, insert, only),
        order=sql.SQL("") if insert else SPATIAL_ORDER,
        sep=sql.SQL(", " if attrs else ""),
        cols=sql.SQL(", ").join(_ident(a) for a in attrs),
    )


def _index_steps(staging: str, table: str, *, identity: bool = True) -> list[Step]:
    steps: list[Step] = [
        (
            sql.SQL("CREATE INDEX ON {} USING gist ({})").format(
                _ident(staging, table), _ident(schema.GEOM_COLUMN)
            ),
            None,
        )
    ]
    if identity:
        steps.append(
            (
                sql.SQL("CREATE INDEX ON {} ({}, {})").format(
                    _ident(staging, table),
                    _ident(schema.OSM_TYPE_COLUMN),
                    _ident(schema.OSM_ID_COLUMN),
                ),
                None,
            )
        )
    return steps


def _sql_file_exists(name: str) -> bool:
    return resources.files("osmimport").joinpath("sql", name).is_file()


@dataclass
class Job:
    """Statements building one family of tables, run in one transaction on one connection."""

    name: str
    #: Relative cost, for running the longest jobs first.
    cost: float
    steps: list[Step]
    #: The tables it makes, in the order the summary lists them.
    tables: list[str]


def plan_jobs(
    staging: str,
    raw_sizes: dict[str, int],
    *,
    generalise: bool = True,
    communes: CommuneSettings | None = None,
    middle: bool = False,
) -> list[Job]:
    """The independent jobs that turn the raw tables into the served ones.

    ``middle``: also index the tables an update reads (see ``loader.MIDDLE_TABLES``).
    """
    rules = communes or CommuneSettings.model_construct()
    jobs: list[Job] = []
    for layer in schema.LAYERS:
        steps: list[Step] = [(layer_table_query(staging, layer.name), None)]
        post = f"layer_{layer.name}.sql"
        if _sql_file_exists(post):
            steps.append((load_sql("osmimport", post), None))
        generalised = generalised_queries(staging, layer) if generalise else []
        steps.extend(step for _, step in generalised)
        tables = [layer.name, *(table for table, _ in generalised)]
        for table in tables:
            steps.extend(_index_steps(staging, table))
        size = raw_sizes.get(RAW_PREFIX + layer.name, 0)
        jobs.append(Job(layer.name, size * (1 + 2 * len(generalised)), steps, tables))
    network = [
        schema.ROAD_WAYS_TABLE,
        schema.ROAD_NODES_TABLE,
        schema.BARRIERS_TABLE,
        schema.RESTRICTIONS_TABLE,
    ]
    jobs.append(
        Job(
            "network",
            sum(raw_sizes.get(t, 0) for t in ("raw_road_ways", "raw_barriers")),
            [
                (load_sql("osmimport", "network.sql"), None),
                *_index_steps(staging, schema.ROAD_WAYS_TABLE, identity=False),
            ],
            network,
        )
    )
    jobs.append(
        Job(
            "communes",
            raw_sizes.get("raw_communes", 0) + raw_sizes.get("raw_commune_ways", 0),
            [
                (
                    load_sql("osmimport", "communes.sql"),
                    {
                        "levels": json.dumps(rules.levels),
                        "default_levels": json.dumps(rules.default_levels),
                    },
                ),
                *_index_steps(staging, schema.COMMUNES_TABLE, identity=False),
            ],
            [schema.COMMUNES_TABLE],
        )
    )
    if middle:
        kept = [*MIDDLE_TABLES, *KEPT_RAW_TABLES]
        jobs.append(
            Job(
                "middle",
                sum(raw_sizes.get(t, 0) for t in kept),
                [
                    (load_sql("osmimport", "middle.sql"), None),
                    (load_sql("osmimport", "way_node_index.sql"), None),
                ],
                kept,
            )
        )
    for job in jobs:
        job.steps.extend(
            (sql.SQL("ANALYZE {}").format(_ident(staging, table)), None) for table in job.tables
        )
    return jobs


def _raw_sizes(cur: psycopg2.extensions.cursor, staging: str) -> dict[str, int]:
    cur.execute(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (staging,),
    )
    return {str(name): int(size) for name, size in cur.fetchall()}


def run_jobs(
    url: str,
    staging: str,
    jobs: Sequence[Job],
    workers: int,
    *,
    say: Callable[[str], None] | None = None,
    first: str | None = None,
    on_built: Callable[[str, dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Run ``jobs`` on ``workers`` connections, longest first; the row count of each table.

    ``say`` gets how long each job took, and its longest statements. The job named ``first``
    starts before the others; ``on_built`` gets each job's name and counts once it is committed,
    in the calling thread (it may start processes that live as long as that thread).
    """
    pending = sorted(jobs, key=lambda job: (job.name != first, -job.cost))
    lock = threading.Lock()
    counts: dict[str, int] = {}
    errors: list[BaseException] = []
    built: queue.Queue[tuple[str, dict[str, int]]] = queue.Queue()

    def work() -> None:
        try:
            conn = connect(url)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
            return
        try:
            with conn.cursor() as cur:
                cur.execute("SET synchronous_commit TO off")
                cur.execute("SET jit TO off")
                cur.execute(sql.SQL("SET search_path TO {}, public").format(_ident(staging)))
                conn.commit()
                while not errors:
                    with lock:
                        if not pending:
                            return
                        job = pending.pop(0)
                    began = time.monotonic()
                    took: list[tuple[float, str]] = []
                    for statement, params in job.steps:
                        step_began = time.monotonic()
                        cur.execute(statement, params)
                        if say is not None:
                            took.append((time.monotonic() - step_began, _step_name(statement, cur)))
                    for table in job.tables:
                        cur.execute(
                            sql.SQL("SELECT count(*) FROM {}").format(_ident(staging, table))
                        )
                        row = cur.fetchone()
                        counts[table] = int(row[0]) if row else 0
                    conn.commit()
                    built.put((job.name, {table: counts[table] for table in job.tables}))
                    if say is not None:
                        longest = ", ".join(
                            f"{name} {seconds:.1f}s" for seconds, name in sorted(took)[::-1][:3]
                        )
                        say(f"  {job.name}: {time.monotonic() - began:.1f}s ({longest})")
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=work, name=f"build-{i}", daemon=True) for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    while True:
        running = any(thread.is_alive() for thread in threads)
        try:
            name, tables = built.get(timeout=0.2)
        except queue.Empty:
            if running:
                continue
            break
        if on_built is not None and not errors:
            try:
                on_built(name, tables)
            except BaseException as exc:  # noqa: BLE001 - re-raised once the workers stop
                errors.append(exc)
    if errors:
        raise errors[0]
    return counts


#: The job building what the before-swap hooks read (the road network).
HOOKS_READ = "network"

#: A before-swap hook: gets (url, staging schema, data version, the folder kept for updates of
#: the database, or None) and adds to the staging schema what must switch with the data. One
#: with a ``prepare`` attribute (see :data:`PREPARE`) gets an update's hook ready meanwhile.
BeforeSwapHook = Callable[[str, str, str, Path | None], None]
#: The attribute of a before-swap hook an update calls (url, kept folder) in a thread of its
#: own as soon as it starts, while the change is staged: the hook may read ahead there what it
#: will need (it runs once that call returned).
PREPARE = "prepare"


def _run_hooks(
    hooks: Sequence[BeforeSwapHook], url: str, staging: str, version: str, keep: Path | None
) -> None:
    for hook in hooks:
        hook(url, staging, version, keep)


def _receive(hooks: Sequence[BeforeSwapHook]) -> None:
    """Nothing: a child process that gets ``hooks`` imports their modules."""


class BeforeSwap:
    """The before-swap hooks of an import, run one after the other in a child process started
    as soon as the road network is built: they read only it, so they run beside the building
    of the other tables (the routing build uses a core the SQL leaves idle)."""

    def __init__(
        self,
        hooks: Sequence[BeforeSwapHook],
        url: str,
        staging: str,
        version: str,
        keep: Path | None = None,
        *,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._hooks = list(hooks)
        self._args = (url, staging, version, keep)
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[None] | None = None
        self._say = say
        self._began = 0.0

    def on_built(self, job: str, counts: dict[str, int]) -> None:
        """Start the hooks once ``job`` has built a road network with roads in it (without
        roads, the import may still be refused: they wait for :meth:`finish`)."""
        if job == HOOKS_READ and counts.get(schema.ROAD_WAYS_TABLE, 0) > 0:
            self._start()

    def warm(self) -> None:
        """Start the child process now, and let it import the hooks' modules while the file is
        read: the hooks then start at once when the road network is built."""
        if self._pool is not None or not self._hooks or not _picklable(self._hooks):
            return
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=term_on_parent_death,
        )
        self._pool.submit(_receive, self._hooks)

    def _start(self) -> None:
        if self._future is not None:
            return
        self.warm()
        if self._pool is None:
            return
        self._future = self._pool.submit(_run_hooks, self._hooks, *self._args)
        self._began = time.monotonic()
        if self._say is not None:
            self._say("before-swap hooks started")
            self._future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        if self._say is not None:
            self._say(f"before-swap hooks done in {time.monotonic() - self._began:.1f}s")

    def finish(self) -> None:
        """Wait for the hooks (run them now if not started); raise the first error."""
        self._start()
        if self._future is None:
            _run_hooks(self._hooks, *self._args)
            return
        if self._say is not None and not self._future.done():
            self._say("waiting for the before-swap hooks")
        try:
            self._future.result()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the child process, if any (the hooks' work is lost)."""
        if self._pool is not None:
            stop_pool(self._pool)
            self._pool = None


def _picklable(value: Any) -> bool:
    """Whether ``value`` can be sent to a child process (closures cannot: run them here)."""
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _step_name(statement: sql.Composable | str, cur: psycopg2.extensions.cursor) -> str:
    """A short name of a job's statement for the timings: its first words after comments."""
    text = statement if isinstance(statement, str) else statement.as_string(cur)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return " ".join(" ".join(lines).split()[:5])[:70]


#: The tables whose extent is the map's: what people look at, not outlying boundary nodes.
EXTENT_TABLES = ("buildings", "streets", schema.ROAD_WAYS_TABLE)


def _extent(
    cur: psycopg2.extensions.cursor, staging: str, tables: Sequence[str]
) -> list[float] | None:
    """The extent of ``tables`` together, [w, s, e, n] in EPSG:4326 (None when all are empty)."""
    extents = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT ST_Extent({}) AS e FROM {}").format(
            _ident(schema.GEOM_COLUMN), _ident(staging, table)
        )
        for table in tables
    )
    cur.execute(
        sql.SQL(
            "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ("
            "SELECT ST_Transform(ST_SetSRID(ST_Extent(e::geometry), 3857), 4326) AS b "
            "FROM ({}) s WHERE e IS NOT NULL) t"
        ).format(extents)
    )
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    return [round(float(v), 7) for v in row]


def _bbox(cur: psycopg2.extensions.cursor, staging: str) -> list[float] | None:
    """The map's extent: buildings and roads, else the communes, else every feature."""
    return (
        _extent(cur, staging, EXTENT_TABLES)
        or _extent(cur, staging, [schema.COMMUNES_TABLE])
        or _extent(cur, staging, [layer.name for layer in schema.LAYERS])
    )


def _center(
    cur: psycopg2.extensions.cursor, staging: str, bbox: list[float] | None
) -> list[float] | None:
    """The point of a building or road nearest to the middle of ``bbox``, [lon, lat].

    Two extracts far apart (Monaco and Andorra) have their box's middle in neither: the map
    opens on data instead.
    """
    if bbox is None:
        return None
    middle = sql.SQL("ST_Transform(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), 3857)")
    nearest = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "(SELECT ST_ClosestPoint({geom}, m.p) AS p FROM {table}, m "
            "ORDER BY {geom} <-> m.p LIMIT 1)"
        ).format(geom=_ident(schema.GEOM_COLUMN), table=_ident(staging, table))
        for table in EXTENT_TABLES
    )
    cur.execute(
        sql.SQL(
            "WITH m AS (SELECT {middle} AS p) "
            "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(n.p, 4326) AS g "
            "FROM ({nearest}) n, m ORDER BY ST_Distance(n.p, m.p) LIMIT 1) t"
        ).format(middle=middle, nearest=nearest),
        {"lon": (bbox[0] + bbox[2]) / 2, "lat": (bbox[1] + bbox[3]) / 2},
    )
    row = cur.fetchone()
    if row is None:
        return [round((bbox[0] + bbox[2]) / 2, 7), round((bbox[1] + bbox[3]) / 2, 7)]
    return [round(float(row[0]), 7), round(float(row[1]), 7)]


def _built_warnings(cur: psycopg2.extensions.cursor, staging: str) -> dict[str, int]:
    """Warnings only the built tables can tell: restrictions whose ways are not all there."""
    cur.execute(
        sql.SQL(load_sql("osmimport", "incomplete_restrictions.sql")).format(
            restrictions=_ident(staging, schema.RESTRICTIONS_TABLE),
            road_ways=_ident(staging, schema.ROAD_WAYS_TABLE),
        )
    )
    row = cur.fetchone()
    return {INCOMPLETE_RESTRICTIONS: int(row[0])} if row and row[0] else {}


def _refuse_empty(
    cur: psycopg2.extensions.cursor,
    paths: Sequence[Path],
    counts: dict[str, int],
    warnings: dict[str, int],
    hooks: BeforeSwap,
) -> None:
    """Raise when the staged data has no features, or no roads where the served data has
    (``hooks`` are stopped first: they may be writing into the staged data)."""
    features = sum(counts.get(layer.name, 0) for layer in schema.LAYERS)
    roads = counts.get(schema.ROAD_WAYS_TABLE, 0)
    served = (read_meta_with(cur) or {}).get("counts") or {}
    served_roads = int(served.get(schema.ROAD_WAYS_TABLE, 0))
    if features and (roads or not served_roads):
        return
    found = f"found {features:,} map features and {roads:,} road ways"
    if not features:
        problem = "nothing to serve"
    else:
        problem = f"no road network, where the data served has {served_roads:,} road ways"
    if warnings:
        what, count = max(warnings.items(), key=lambda item: item[1])
        found += f" ({count:,} {what})"
    cur.connection.rollback()
    hooks.stop()
    cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(_ident(schema.STAGING_SCHEMA)))
    cur.connection.commit()
    where = ", ".join(str(p) for p in paths)
    raise OsmImportError(
        f"{where}: {found}: {problem}; the data served is unchanged "
        "(pass --allow-empty to replace it anyway)"
    )


#: How long each step of the swap waits for its locks before it steps back and tries again:
#: below PostgreSQL's deadlock_timeout, so the swap gives way to tile queries instead of
#: deadlocking with them.
SWAP_LOCK_TIMEOUT_MS = 300
SWAP_ATTEMPTS = 50


def _swap(cur: psycopg2.extensions.cursor, version: str) -> None:
    """Rename staging into place (and NOTIFY) in one short transaction, then drop the old data.

    Each transaction takes its locks with a lock_timeout and is retried; the old data's drop
    is left to the next import if readers hold it too long.
    """
    live, staging, retired = (
        _ident(schema.SCHEMA),
        _ident(schema.STAGING_SCHEMA),
        _ident(schema.RETIRED_SCHEMA),
    )

    def rename() -> None:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(retired))
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema.SCHEMA,))
        if cur.fetchone() is not None:
            cur.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(live, retired))
        cur.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(staging, live))
        cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, version))

    _with_lock_retries(cur, rename)
    try:
        _with_lock_retries(
            cur, lambda: cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(retired))
        )
    except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
        pass


def _with_lock_retries(cur: psycopg2.extensions.cursor, step: Callable[[], None]) -> None:
    """Run ``step`` in its own transaction with a lock_timeout, retried while locks are busy."""
    conn = cur.connection
    for attempt in range(SWAP_ATTEMPTS):
        try:
            timeout = f"{SWAP_LOCK_TIMEOUT_MS}ms"
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (timeout,))
            step()
            conn.commit()
            return
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            conn.rollback()
            if attempt == SWAP_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (1 + attempt % 5))


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_import(
    url: str,
    files: Sequence[Path],
    *,
    progress: bool = False,
    after_import: Sequence[Callable[[str], None]] = (),
    before_swap: Sequence[BeforeSwapHook] = (),
    node_dir: Path | None = None,
    generalise: bool = True,
    allow_empty: bool = False,
    communes: CommuneSettings | None = None,
) -> ImportSummary:
    """Import ``files`` into the ``osm`` schema of ``url``; the old data stays until the swap.

    An import that finds no map features, or no road network where the served data has one,
    is refused (the served data stays) unless ``allow_empty`` is set.

    ``communes`` says which administrative levels are communes per country (defaults: the
    settings' own).

    ``generalise=False`` skips the optional generalised low-zoom tables (a faster import whose
    low-zoom tiles then read the full-detail tables).

    Node locations are kept in a file-backed index (libosmium's sparse_file_array: 16 bytes a
    node, any 64-bit id). With ``node_dir``, that file is kept as
    ``node_dir/nodes-<version>.cache`` for later updates; ``osm.meta`` names the file that
    belongs to the data swapped in.

    ``before_swap`` hooks (:data:`BeforeSwapHook`, given ``node_dir``) run once the road network
    of the staging schema is built (in a child process, beside the building of the other tables:
    see :class:`BeforeSwap`) and add to it what must switch with the data (the routing data);
    ``after_import`` hooks get the url after the swap.

    A single file is read as if sorted (checking costs a pass over it); when the reading finds
    it is not, it is sorted and imported again.
    """
    options: dict[str, Any] = {
        "progress": progress,
        "after_import": after_import,
        "before_swap": before_swap,
        "node_dir": node_dir,
        "generalise": generalise,
        "allow_empty": allow_empty,
        "communes": communes,
    }
    try:
        return _import(url, files, assume_sorted=True, **options)
    except _SortFirst:
        return _import(url, files, assume_sorted=False, **options)


class _SortFirst(Exception):
    """A file read as if sorted is not: sort it and import again."""


def _import(
    url: str,
    files: Sequence[Path],
    *,
    assume_sorted: bool,
    progress: bool,
    after_import: Sequence[Callable[[str], None]],
    before_swap: Sequence[BeforeSwapHook],
    node_dir: Path | None,
    generalise: bool,
    allow_empty: bool,
    communes: CommuneSettings | None,
) -> ImportSummary:
    started = time.monotonic()
    paths = [Path(f) for f in files]
    if not paths:
        raise OsmImportError("no input file given")
    for path in paths:
        check_input(path)
    sources: list[SourceFile] = []
    header_boxes: list[list[float]] = []
    for path in paths:
        stamp, box = read_header(path)
        sources.append(SourceFile(path.name, path.stat().st_size, stamp))
        if box:
            header_boxes.append(box)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    staging = schema.STAGING_SCHEMA
    node_store = None
    if node_dir is not None:
        node_dir.mkdir(parents=True, exist_ok=True)
        node_store = node_dir / f"{NODE_STORE_PREFIX}{version}{NODE_STORE_SUFFIX}"

    with import_lock(url), _work_dir(node_dir) as tmp:
        source, input_warnings = prepare(
            paths, Path(tmp), progress=progress, assume_sorted=assume_sorted
        )

        def say(text: str) -> None:
            _say(progress, f"[{time.monotonic() - started:6.1f}s] {text}")

        hooks = BeforeSwap(before_swap, url, staging, version, node_dir, say=say)
        conn = connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SET synchronous_commit TO off")
                cur.execute("SET jit TO off")
                cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(_ident(staging)))
                cur.execute(sql.SQL("CREATE SCHEMA {}").format(_ident(staging)))
                create_raw_tables(cur, staging)
                middle = node_store is not None
                if middle:
                    create_middle_tables(cur, staging)
                conn.commit()
                rules = communes or CommuneSettings.model_construct()
                loader = Loader(cur, staging, rules.all_levels(), middle=middle)
                loader.warnings.update(input_warnings)
                middle_ways = MiddleWays(url, staging, source) if middle else None
                hooks.warm()
                try:
                    # Node locations always go to a file-backed index (memory does not grow
                    # with the input); without node_dir it is a throwaway file.
                    locations = node_store or Path(tmp) / f"nodes{NODE_STORE_SUFFIX}"
                    loader.run(source, progress=progress, node_store=locations)
                    say("read")
                    if middle_ways is not None:
                        middle_ways.wait()
                        say("ways kept for updates copied")
                except UnsortedInput as exc:
                    if assume_sorted and len(paths) == 1 and osmium_tool() is not None:
                        raise _SortFirst from exc
                    raise unsorted_error(paths[0] if len(paths) == 1 else source) from exc
                except RuntimeError as exc:
                    where = ", ".join(str(p) for p in paths)
                    raise OsmImportError(f"{where}: cannot be read ({exc})") from exc
                finally:
                    if middle_ways is not None:
                        middle_ways.stop()
                conn.commit()
                say(f"loaded; building tables on {BUILD_WORKERS} connections")
                building = time.monotonic()
                jobs = plan_jobs(
                    staging,
                    _raw_sizes(cur, staging),
                    generalise=generalise,
                    communes=rules,
                    middle=middle,
                )
                conn.commit()
                built = run_jobs(
                    url,
                    staging,
                    jobs,
                    BUILD_WORKERS,
                    say=say if progress else None,
                    first=HOOKS_READ,
                    on_built=hooks.on_built,
                )
                say(f"built {len(built)} tables in {time.monotonic() - building:.1f}s")
                if middle:
                    # Not a job: it locks the raw tables the network and communes jobs read.
                    cur.execute(
                        sql.SQL("SET LOCAL search_path TO {}, public").format(_ident(staging))
                    )
                    cur.execute(load_sql("osmimport", "middle_raw.sql"))
                    say("raw tables kept for updates indexed")
                raw = [*(RAW_PREFIX + layer.name for layer in schema.LAYERS), *RAW_TABLES]
                for table in raw:
                    if not (middle and table in KEPT_RAW_TABLES):
                        cur.execute(sql.SQL("DROP TABLE {}").format(_ident(staging, table)))
                layer_jobs = [job for job in jobs if job.name in schema.LAYER_BY_NAME]
                all_tables = [
                    *(job.tables[0] for job in layer_jobs),
                    *(table for job in layer_jobs for table in job.tables[1:]),
                    *(
                        table
                        for job in jobs
                        if job not in layer_jobs and job.name != "middle"
                        for table in job.tables
                    ),
                ]
                counts = {table: built[table] for table in all_tables}
                loader.warnings.update(_built_warnings(cur, staging))
                if not allow_empty:
                    _refuse_empty(cur, paths, counts, loader.warnings, hooks)
                bbox = _bbox(cur, staging) or _union_boxes(header_boxes)
                center = _center(cur, staging, bbox)
                meta = {
                    "data_version": version,
                    "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "sources": [s.__dict__ for s in sources],
                    "bbox": bbox,
                    "center": center,
                    "counts": counts,
                    "warnings": dict(loader.warnings),
                }
                if node_store is not None:
                    meta[schema.NODE_STORE_KEY] = node_store.name
                cur.execute(
                    sql.SQL("CREATE TABLE {} (key text PRIMARY KEY, value jsonb NOT NULL)").format(
                        _ident(staging, schema.META_TABLE)
                    )
                )
                for key, value in meta.items():
                    cur.execute(
                        sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(
                            _ident(staging, schema.META_TABLE)
                        ),
                        (key, json.dumps(value)),
                    )
                cur.execute(sql.SQL("ANALYZE {}").format(_ident(staging, schema.META_TABLE)))
                conn.commit()
                say("summary written")
                hooks.finish()
                _swap(cur, version)
                say("swapped")
            conn.commit()
        except BaseException:
            hooks.stop()
            if node_store is not None:
                node_store.unlink(missing_ok=True)
            raise
        finally:
            conn.close()
        if node_dir is not None and node_store is not None:
            _remove_old_node_stores(node_dir, keep=node_store)
    for hook in after_import:
        hook(url)
    return ImportSummary(
        data_version=version,
        counts=counts,
        warnings=dict(loader.warnings),
        elapsed=time.monotonic() - started,
        peak_rss_mb=_peak_rss_mb(),
        sources=sources,
        bbox=bbox,
    )


@contextmanager
def _work_dir(node_dir: Path | None) -> Iterator[str]:
    """The import's temporary folder: beside the node files (on disk, not a RAM /tmp) if known.

    Called with the import lock held, so folders left there by a killed import are removed.
    """
    if node_dir is not None:
        for stale in node_dir.glob(f"{WORK_DIR_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=WORK_DIR_PREFIX, dir=node_dir) as tmp:
        yield tmp


def _remove_old_node_stores(node_dir: Path, keep: Path) -> None:
    # Files of earlier imports, and of imports killed before their swap.
    for old in node_dir.glob(f"{NODE_STORE_PREFIX}*{NODE_STORE_SUFFIX}"):
        if old.name != keep.name:
            old.unlink(missing_ok=True)


def node_store_dir(data_dir: Path, url: str) -> Path:
    """Where the node locations of the database at ``url`` are kept, next to its data."""
    dbname = psycopg2.extensions.parse_dsn(url).get("dbname") or "default"
    return data_dir / "nodes" / dbname


def data_dir_of_node_store(node_dir: Path) -> Path:
    """The data folder a :func:`node_store_dir` is in."""
    return node_dir.parent.parent


def _union_boxes(boxes: list[list[float]]) -> list[float] | None:
    if not boxes:
        return None
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def _say(enabled: bool, message: str) -> None:
    if enabled:
        # One write with its newline: the before-swap child writes to the same stderr, and
        # print's separate newline let its lines land inside ours.
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()


def read_meta(url: str) -> dict[str, Any] | None:
    """The ``osm.meta`` facts of the loaded data, or None when nothing is loaded."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            return read_meta_with(cur)
    finally:
        conn.close()

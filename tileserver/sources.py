"""Where tiles come from: PostGIS (cut per request) or a PMTiles/MBTiles archive."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import mmap
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool
from pmtiles.reader import Reader as PMTilesReader
from pmtiles.tile import Compression

from osmimport import schema
from osmimport.children import lower_backend_priority
from osmimport.database import serving_url
from osmimport.dataversion import NO_DATA
from osmimport.errors import DatabaseError
from osmimport.settings import DatabaseSettings
from tileserver.catalog import Catalog, parse_bbox, read_catalog, tile_query
from tileserver.errors import ArchiveError
from tileserver.guard import KEEPALIVES, Breaker, DatabaseDown, Deadlines
from tileserver.settings import TileSettings

ATTRIBUTION = (
    '<a href="https://www.openstreetmap.org/copyright" target="_blank">'
    "&copy; OpenStreetMap contributors</a>"
)


class TileSource(Protocol):
    """Gives raw (uncompressed) MVT bytes and describes the tileset."""

    def open(self) -> None:
        """Acquire resources (pool, file handles)."""

    def close(self) -> None:
        """Release them."""

    def data_version(self) -> str:
        """The version of the data the tiles are cut from."""

    def refresh(self) -> str:
        """Re-read the data version (and what depends on it); returns it."""

    def tile(self, z: int, x: int, y: int) -> tuple[str, bytes]:
        """The data version and the raw MVT bytes of a tile (b"" when empty)."""

    def describe(self) -> dict[str, Any]:
        """TileJSON fields that depend on the data: vector_layers, bounds, center, zooms."""


def _center(
    bounds: list[float] | None, zoom: int = 10, point: tuple[float, float] | None = None
) -> list[float] | None:
    if point is not None:
        return [round(point[0], 6), round(point[1], 6), zoom]
    if not bounds:
        return None
    return [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6), zoom]


def _fit_zoom(bounds: list[float]) -> int:
    """The zoom at which the bbox about fills a 1024 px wide window."""
    import math

    span = max(bounds[2] - bounds[0], (bounds[3] - bounds[1]) * 1.5, 1e-6)
    return max(0, min(schema.MAX_ZOOM, int(math.log2(360 * 4 / span))))


#: What a tile query may meet while an import swaps the schema in: tables gone or renamed,
#: a prepared plan whose tables changed, the swap's locks.
SWAP_ERRORS: tuple[type[psycopg2.Error], ...] = (
    psycopg2.errors.UndefinedTable,
    psycopg2.errors.UndefinedColumn,
    psycopg2.errors.InvalidSchemaName,
    psycopg2.errors.FeatureNotSupported,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
    psycopg2.errors.InternalError_,
)


class KeepingPool(psycopg2.pool.ThreadedConnectionPool):
    """Opens connections when first needed, and keeps up to ``maxconn`` of them open when
    returned: psycopg2 keeps only ``minconn``, so with 0 every tile query connected anew."""

    def __init__(self, maxconn: int, *args: Any, nice: int = 0, **kwargs: Any) -> None:
        super().__init__(0, maxconn, *args, **kwargs)
        self.minconn = maxconn
        #: Niceness added to the backend of each new connection (see lower_backend_priority).
        self.nice = nice

    def _connect(self, key: Any = None) -> psycopg2.extensions.connection:
        conn: psycopg2.extensions.connection = super()._connect(key)  # type: ignore[misc]
        if self.nice > 0:
            try:
                lower_backend_priority(conn, self.nice)
            except psycopg2.Error:
                # The connection's first query will meet the same fault and report it.
                pass
        return conn

    def fill(self, count: int) -> int:
        """Open connections until ``count`` are open (idle or in use, at most ``maxconn``);
        returns how many it opened."""
        lock: threading.Lock = getattr(self, "_lock")  # noqa: B009  # psycopg2's, untyped
        idle: list[psycopg2.extensions.connection] = getattr(self, "_pool")  # noqa: B009
        used: dict[Any, psycopg2.extensions.connection] = getattr(self, "_used")  # noqa: B009
        opened = 0
        with lock:
            while len(idle) + len(used) < min(count, self.maxconn):
                self._connect()
                opened += 1
        return opened

    def discard_idle(self) -> None:
        """Close the idle connections."""
        lock: threading.Lock = getattr(self, "_lock")  # noqa: B009  # psycopg2's, untyped
        idle: list[psycopg2.extensions.connection] = getattr(self, "_pool")  # noqa: B009
        with lock:
            for conn in idle:
                conn.close()
            idle.clear()


def _connection_failed(exc: psycopg2.Error) -> bool:
    """Whether ``exc`` says the connection or server failed, not the statement."""
    if isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return False
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if isinstance(exc, psycopg2.OperationalError):
        # Class 08 (connection exception), 57P (operator intervention: shutdown), or none
        # at all (libpq lost the connection).
        code = exc.pgcode or ""
        return not code or code.startswith(("08", "57P"))
    return False


class TileConnection(psycopg2.extensions.connection):
    """A pooled connection that remembers the tile statements it has prepared.

    In autocommit: a tile is one statement, so no BEGIN before it and no ROLLBACK after it
    (two round trips fewer, and no snapshot held between tiles).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.autocommit = True
        self.prepared: set[str] = set()


class PostGISSource:
    """Tiles cut by one SQL statement per tile from the served schema.

    Each zoom's statement is prepared once per connection (in the same round trip as its first
    execution), so a tile costs one ``EXECUTE``.
    """

    def __init__(
        self,
        database: DatabaseSettings | str,
        settings: TileSettings,
        *,
        pool_size: int = 10,
        backend_nice: int = 0,
        open_at_start: int = 0,
    ) -> None:
        self.database = database
        #: Connections :meth:`open` opens at once, before the first tile needs them.
        self.open_at_start = open_at_start
        #: Niceness added to the local backends of the pool's connections.
        self.backend_nice = backend_nice
        self.url = database if isinstance(database, str) else ""
        self.settings = settings
        self.pool_size = max(1, pool_size)
        self.pool: KeepingPool | None = None
        self._catalog = Catalog()
        self._queries: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.breaker = Breaker(settings.retry_after)
        self.deadlines = Deadlines()

    def connect_kwargs(self) -> dict[str, Any]:
        """Connection options: no JIT, no parallel plans, connect and statement timeouts, TCP
        keepalives.

        A tile reads a few hundred pages: on a large region's tables the planner would still
        start parallel workers for some, whose start-up costs more than they save while the
        server cuts other tiles on the same cores.
        """
        timeout_ms = int(self.settings.statement_timeout_ms)
        return {
            "options": (
                "-c jit=off -c max_parallel_workers_per_gather=0 "
                f"-c statement_timeout={timeout_ms} "
                f"-c idle_in_transaction_session_timeout={timeout_ms * 2}"
            ),
            "application_name": "fondplan-tiles",
            "connection_factory": TileConnection,
            "connect_timeout": max(1, math.ceil(self.settings.connect_timeout)),
            **KEEPALIVES,
        }

    def open(self) -> None:
        """Resolve the database (starting the embedded one if needed), open the pool.

        The pool opens ``open_at_start`` connections now (their backends started and reniced
        before the server takes requests, not at its first burst of uncached tiles, on the
        CPU its first answers need), the others when they are first needed.
        """
        if not isinstance(self.database, str):
            # The embedded cluster's read-only role: the server never writes.
            self.url = serving_url(self.database)
        self.pool = KeepingPool(
            self.pool_size, self.url, nice=self.backend_nice, **self.connect_kwargs()
        )
        try:
            self.refresh()
        except DatabaseDown as exc:
            cause = exc.__cause__ or exc
            raise DatabaseError(f"cannot connect to the database: {str(cause).strip()}") from exc
        try:
            self.pool.fill(self.open_at_start)
        except psycopg2.Error:
            # Opened when first needed, as the others: its failure is reported then.
            pass

    def close(self) -> None:
        """Close every pooled connection."""
        if self.pool is not None:
            self.pool.closeall()
            self.pool = None

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A pooled connection; one that saw an error is closed instead of returned.

        (Its session state, such as prepared statements, is then unknown.)

        Each call is bounded on the client side too (:class:`Deadlines`); while the database
        is failing, calls raise :class:`DatabaseDown` at once (:class:`Breaker`).
        """
        pool = self.pool
        if pool is None:
            raise DatabaseError("the tile source is not open")
        self.breaker.check()
        try:
            conn = pool.getconn()
        except psycopg2.OperationalError as exc:
            self.breaker.failed(exc)
            raise DatabaseDown(self.breaker.cooldown) from exc
        broken = False
        token = self.deadlines.watch(conn.fileno(), self.settings.deadline())
        try:
            yield conn
        except psycopg2.Error as exc:
            broken = True
            if _connection_failed(exc):
                self.breaker.failed(exc)
                # The idle ones very likely lost their server too (a restart).
                pool.discard_idle()
                raise DatabaseDown(self.breaker.cooldown) from exc
            raise
        finally:
            self.deadlines.release(token)
            if not broken and not conn.closed and not conn.autocommit:
                try:
                    conn.rollback()
                except psycopg2.Error:
                    broken = True
            pool.putconn(conn, close=broken or bool(conn.closed))
        self.breaker.succeeded()

    def gauges(self) -> dict[str, float]:
        """The database pool and guard, for /metrics."""
        pool = self.pool
        in_use = len(getattr(pool, "_used", {})) if pool is not None else 0
        idle = len(getattr(pool, "_pool", [])) if pool is not None else 0
        return {
            "fondplan_db_up": float(not self.breaker.down),
            "fondplan_db_failures_total": float(self.breaker.failures),
            "fondplan_db_deadline_cuts_total": float(self.deadlines.cut),
            "fondplan_db_pool_in_use": float(in_use),
            "fondplan_db_pool_idle": float(idle),
            "fondplan_db_pool_size": float(self.pool_size),
        }

    @property
    def catalog(self) -> Catalog:
        """The last catalog read."""
        return self._catalog

    def data_version(self) -> str:
        """The data version of the last catalog read."""
        return self._catalog.data_version

    def refresh(self) -> str:
        """Re-read the catalog; the tile statements are rebuilt when it changed."""
        with self.connection() as conn:
            catalog = read_catalog(conn)
        with self._lock:
            if catalog != self._catalog:
                self._catalog = catalog
                self._queries = {}
        return catalog.data_version

    def _statement(self, conn: psycopg2.extensions.connection, zoom: int) -> tuple[str, str]:
        """(name, PREPARE text) of the zoom's tile statement; the name changes with the SQL."""
        with self._lock:
            found = self._queries.get(zoom)
            if found is None:
                composed = tile_query(
                    self._catalog, zoom, extent=self.settings.extent, buffer=self.settings.buffer
                )
                body = composed.as_string(conn)
                for i, name in enumerate(("z", "x", "y"), start=1):
                    body = body.replace(f"%({name})s", f"${i}")
                digest = hashlib.sha1(body.encode()).hexdigest()[:12]
                name = f"fondplan_tile_{zoom}_{digest}"
                prepare = f"PREPARE {name} (integer, integer, integer) AS {body}"
                found = (name, prepare.replace("%", "%%"))
                self._queries[zoom] = found
            return found

    def _execute(self, conn: psycopg2.extensions.connection, z: int, x: int, y: int) -> Any:
        name, prepare = self._statement(conn, z)
        prepared: set[str] = getattr(conn, "prepared", set())
        with conn.cursor() as cur:
            if name in prepared:
                cur.execute(f"EXECUTE {name} (%s, %s, %s)", (z, x, y))
            else:
                cur.execute(f"{prepare}; EXECUTE {name} (%s, %s, %s)", (z, x, y))
                prepared.add(name)
            return cur.fetchone()

    def tile(self, z: int, x: int, y: int) -> tuple[str, bytes]:
        """Cut one tile; a schema that changed under us is re-read once and the tile retried."""
        try:
            with self.connection() as conn:
                row = self._execute(conn, z, x, y)
        except SWAP_ERRORS:
            # An import swapped the schema during the query (the connection was discarded).
            self.refresh()
            with self.connection() as conn:
                row = self._execute(conn, z, x, y)
        version = row[0] or NO_DATA
        return str(version), bytes(row[1] or b"")

    def describe(self) -> dict[str, Any]:
        """vector_layers from the layer list and the catalog; bounds/center from meta."""
        catalog = self._catalog
        layers = catalog.vector_layers()
        bbox = catalog.bbox()
        bounds = [round(v, 6) for v in bbox] if bbox else [-180.0, -85.051129, 180.0, 85.051129]
        return {
            "vector_layers": layers,
            "bounds": bounds,
            "center": _center(bounds, _fit_zoom(bounds) if bbox else 1, catalog.center()),
            "minzoom": 0,
            "maxzoom": schema.MAX_ZOOM,
        }


def _ungzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _file_version(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[
        :16
    ]


class PMTilesSource:
    """Tiles read from a PMTiles v3 archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: PMTilesReader | None = None
        self._file: Any = None
        self._mmap: mmap.mmap | None = None
        self._metadata: dict[str, Any] = {}
        self._header: dict[str, Any] = {}
        self._version = ""

    def open(self) -> None:
        """Map the file and read its header and metadata."""
        try:
            self._file = self.path.open("rb")
            self._mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            mapping = self._mmap

            def get_bytes(offset: int, length: int) -> bytes:
                return mapping[offset : offset + length]

            self._reader = PMTilesReader(get_bytes)  # type: ignore[no-untyped-call]
            self._header = dict(self._reader.header())  # type: ignore[no-untyped-call]
            self._metadata = dict(self._reader.metadata())  # type: ignore[no-untyped-call]
        except Exception as exc:
            self.close()
            raise ArchiveError(f"{self.path}: not a readable PMTiles v3 archive ({exc})") from exc
        self._version = str(self._metadata.get("fondplan:data_version") or _file_version(self.path))

    def close(self) -> None:
        """Unmap and close the file."""
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._reader = None

    def data_version(self) -> str:
        """The version stored at export, else one derived from the file."""
        return self._version

    def refresh(self) -> str:
        """An archive does not change while served."""
        return self._version

    def tile(self, z: int, x: int, y: int) -> tuple[str, bytes]:
        """The tile's bytes (b"" when the archive has none)."""
        if self._reader is None:
            raise ArchiveError("the archive is not open")
        data = self._reader.get(z, x, y)  # type: ignore[no-untyped-call]
        if not data:
            return self._version, b""
        if self._header.get("tile_compression") == Compression.GZIP:
            return self._version, gzip.decompress(data)
        return self._version, bytes(data)

    def describe(self) -> dict[str, Any]:
        """TileJSON fields from the archive's header and metadata."""
        h = self._header
        bounds = [
            h["min_lon_e7"] / 1e7,
            h["min_lat_e7"] / 1e7,
            h["max_lon_e7"] / 1e7,
            h["max_lat_e7"] / 1e7,
        ]
        return {
            "vector_layers": self._metadata.get("vector_layers", []),
            "bounds": bounds,
            "center": [h["center_lon_e7"] / 1e7, h["center_lat_e7"] / 1e7, h["center_zoom"]],
            "minzoom": h["min_zoom"],
            "maxzoom": h["max_zoom"],
        }


class MBTilesSource:
    """Tiles read from an MBTiles (SQLite) file; one read-only connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._metadata: dict[str, str] = {}
        self._version = ""

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False
            )
            self._local.conn = conn
        return conn

    def open(self) -> None:
        """Read the metadata table."""
        if not self.path.is_file():
            raise ArchiveError(f"{self.path}: no such file")
        try:
            rows = self._conn().execute("SELECT name, value FROM metadata").fetchall()
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.path}: not a readable MBTiles file ({exc})") from exc
        self._metadata = {str(k): str(v) for k, v in rows}
        self._version = self._metadata.get("fondplan:data_version") or _file_version(self.path)

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def data_version(self) -> str:
        """The version stored at export, else one derived from the file."""
        return self._version

    def refresh(self) -> str:
        """An archive does not change while served."""
        return self._version

    def tile(self, z: int, x: int, y: int) -> tuple[str, bytes]:
        """The tile's bytes (MBTiles rows are in TMS order: y counts from the south)."""
        row = (
            self._conn()
            .execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                "AND tile_row = ?",
                (z, x, (1 << z) - 1 - y),
            )
            .fetchone()
        )
        if row is None or not row[0]:
            return self._version, b""
        return self._version, _ungzip(bytes(row[0]))

    def describe(self) -> dict[str, Any]:
        """TileJSON fields from the metadata table."""
        meta = self._metadata
        extra: dict[str, Any] = {}
        if "json" in meta:
            try:
                extra = json.loads(meta["json"])
            except ValueError:
                extra = {}
        bbox = parse_bbox(meta.get("bounds"))
        bounds = list(bbox) if bbox else [-180.0, -85.051129, 180.0, 85.051129]
        center: list[float] | None = None
        if meta.get("center"):
            try:
                center = [float(v) for v in meta["center"].split(",")]
            except ValueError:
                center = None
        return {
            "vector_layers": extra.get("vector_layers", []),
            "bounds": bounds,
            "center": center or _center(bounds),
            "minzoom": int(meta.get("minzoom", 0)),
            "maxzoom": int(meta.get("maxzoom", schema.MAX_ZOOM)),
        }


def archive_source(path: Path) -> TileSource:
    """The source for a ``.pmtiles`` or ``.mbtiles`` file."""
    suffix = path.suffix.lower()
    if suffix == ".pmtiles":
        return PMTilesSource(path)
    if suffix == ".mbtiles":
        return MBTilesSource(path)
    raise ArchiveError(f"{path}: expected a .pmtiles or .mbtiles file")

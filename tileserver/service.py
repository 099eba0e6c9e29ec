"""The tile service: memory cache, disk cache, then the source; follows the data version."""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import psycopg2.extensions

from osmimport.dataversion import NO_DATA, NOTIFY_CHANNEL
from osmimport.errors import FondplanError
from osmimport.update import expired_tiles
from tileserver.cache import CachedTile, DiskCache, MemoryCache, TileKey, make_tile
from tileserver.guard import KEEPALIVES
from tileserver.metrics import Metrics
from tileserver.sources import PostGISSource, TileSource

log = logging.getLogger(__name__)

#: A cache following the data version: (previous version, new version, tiles expired or None).
CarryHook = Callable[[str, str, set[tuple[int, int, int]] | None], None]


class TileService:
    """Serves tiles by (data_version, z, x, y); never answers a tile of data that is gone.

    Other route groups (raster rendering, exports) read tiles through :meth:`raw`.
    """

    def __init__(
        self,
        source: TileSource,
        *,
        memory_bytes: int,
        disk_root: Path | None = None,
        version_ttl: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.memory = MemoryCache(memory_bytes)
        self.disk = DiskCache(disk_root) if disk_root is not None else None
        self.version_ttl = version_ttl
        self.metrics = metrics or Metrics()
        self._version = NO_DATA
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._switch = threading.Lock()
        self._switch_hooks: list[Callable[[str], None]] = []
        self._carry_hooks: list[CarryHook] = []

    # -- life cycle ------------------------------------------------------------------------
    def start(self, *, watch: bool = True) -> None:
        """Open the source and, for a database, follow the data version in a thread."""
        self.source.open()
        self._set_version(self.source.data_version())
        if watch and isinstance(self.source, PostGISSource):
            self._stop.clear()
            self._watcher = threading.Thread(
                target=self._watch, args=(self.source,), name="fondplan-version", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        """Stop following the version and close the source."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        self.source.close()

    @property
    def version(self) -> str:
        """The data version tiles are currently served for."""
        return self._version

    def add_switch_hook(self, hook: Callable[[str], None]) -> None:
        """Run ``hook(version)`` before each switch to a new data version: what is served
        with the tiles (routes) gets ready first, then everything switches at once."""
        self._switch_hooks.append(hook)

    def add_carry_hook(self, hook: CarryHook) -> None:
        """Run ``hook(previous, version, expired)`` at each switch, ``expired`` the vector
        tiles (z, x, y) the update from ``previous`` changed (None: unknown, all of them):
        other caches drawn from the tiles keep what the update left unchanged."""
        self._carry_hooks.append(hook)

    def _set_version(self, version: str) -> None:
        if version == self._version:
            return
        # One switch at a time; a tile request that saw the new data waits for it.
        with self._switch:
            if version == self._version:
                return
            for hook in self._switch_hooks:
                try:
                    hook(version)
                except Exception:
                    log.exception("getting data version %s ready", version)
            expired = self._expired(self._version, version)
            previous, self._version = self._version, version
            log.info("data version %s -> %s", previous, version)
            if expired is None:
                self.memory.clear()
            else:
                # An update from the version served: only the tiles it changed go.
                self.memory.carry_over(previous, version, expired)
                if self.disk is not None:
                    self.disk.carry_over(previous, version, expired)
            for carry in self._carry_hooks:
                carry(previous, version, expired)
            if self.disk is not None:
                threading.Thread(target=self.disk.prune, args=(version,), daemon=True).start()

    def _expired(self, previous: str, version: str) -> set[tuple[int, int, int]] | None:
        """The tiles an update from ``previous`` to ``version`` changed (None: unknown)."""
        if not isinstance(self.source, PostGISSource):
            return None
        try:
            return expired_tiles(self.source.url, previous, version)
        except (psycopg2.Error, FondplanError) as exc:
            log.warning("reading the tiles expired by data version %s: %s", version, exc)
            return None

    def refresh(self) -> str:
        """Re-read the data version now."""
        self._set_version(self.source.refresh())
        return self._version

    def _watch(self, source: PostGISSource) -> None:
        """LISTEN for the import's NOTIFY; also re-read the version every ``version_ttl``."""
        while not self._stop.is_set():
            conn: psycopg2.extensions.connection | None = None
            try:
                conn = psycopg2.connect(
                    source.url,
                    application_name="fondplan-version",
                    connect_timeout=source.connect_kwargs()["connect_timeout"],
                    **KEEPALIVES,
                )
                conn.autocommit = True
                with conn.cursor() as cur:
                    # A streaming replica refuses LISTEN and gets no NOTIFY: it is polled only.
                    cur.execute("SELECT pg_is_in_recovery()")
                    row = cur.fetchone()
                    if not (row and row[0]):
                        cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.refresh()
                last = time.monotonic()
                # poll(), not select(): a process with many open files (memory-mapped routing
                # data) has descriptors above select's limit of 1024.
                waiter = select.poll()
                waiter.register(conn.fileno(), select.POLLIN)
                while not self._stop.is_set():
                    ready = waiter.poll(500)
                    notified = False
                    if ready:
                        conn.poll()
                        notified = bool(conn.notifies)
                        conn.notifies.clear()
                    if notified or time.monotonic() - last >= self.version_ttl:
                        self.refresh()
                        last = time.monotonic()
            except (psycopg2.Error, OSError, FondplanError) as exc:
                log.warning("data version watcher: %s", str(exc).strip())
                self._stop.wait(min(self.version_ttl, 5.0))
            finally:
                if conn is not None:
                    conn.close()

    # -- tiles -----------------------------------------------------------------------------
    def cached(self, z: int, x: int, y: int) -> CachedTile | None:
        """The tile from memory, or None (cheap: safe to call on the event loop)."""
        tile = self.memory.get((self._version, z, x, y))
        self.metrics.cache_event("memory", "hit" if tile is not None else "miss")
        return tile

    def stored(self, z: int, x: int, y: int) -> CachedTile | None:
        """The tile from the disk cache (kept in memory too), or None (blocking, cheap)."""
        if self.disk is None:
            return None
        key: TileKey = (self._version, z, x, y)
        tile = self.disk.get(key)
        self.metrics.cache_event("disk", "hit" if tile is not None else "miss")
        if tile is not None:
            self.memory.put(key, tile)
        return tile

    def cut(self, z: int, x: int, y: int) -> tuple[CachedTile, str]:
        """The tile from the source, kept in the caches (blocking); also says where it came
        from."""
        key: TileKey = (self._version, z, x, y)
        version, raw = self.source.tile(z, x, y)
        tile = make_tile(version, raw)
        if version != key[0]:
            # The data changed under us: the tile belongs to the new version.
            self._set_version(version)
            key = (version, z, x, y)
        self.memory.put(key, tile)
        if self.disk is not None:
            self.disk.put(key, tile)
        return tile, "database" if isinstance(self.source, PostGISSource) else "archive"

    def fetch(self, z: int, x: int, y: int) -> tuple[CachedTile, str]:
        """The tile from disk or the source (blocking); also says where it came from."""
        tile = self.stored(z, x, y)
        if tile is not None:
            return tile, "disk"
        return self.cut(z, x, y)

    def get(self, z: int, x: int, y: int) -> CachedTile:
        """The tile from wherever it is cached, else cut now (blocking)."""
        tile = self.cached(z, x, y)
        if tile is not None:
            return tile
        return self.fetch(z, x, y)[0]

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The area the data covers (west, south, east, north), when known."""
        bounds = self.source.describe().get("bounds")
        if not bounds or len(bounds) != 4:
            return None
        west, south, east, north = (float(v) for v in bounds)
        return west, south, east, north

    def raw(self, z: int, x: int, y: int) -> bytes:
        """The uncompressed MVT bytes of a tile (b"" when empty), through the caches."""
        return self.get(z, x, y).raw()

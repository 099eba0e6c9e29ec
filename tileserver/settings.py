"""The server's and the CLI's settings tree; ``python -m tileserver.settings [--readme]``."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from cities.settings import TownplanSettings
from osmimport.settings import (
    CommuneSettings,
    DatabaseSettings,
    ImportSettings,
    Section,
    markdown_table,
    replace_table,
)
from routing.settings import RoutingSettings

__all__ = [
    "AssetSettings",
    "CacheSettings",
    "CommuneSettings",
    "DatabaseSettings",
    "LimitSettings",
    "RasterSettings",
    "RoutingSettings",
    "ServerSettings",
    "Settings",
    "TileSettings",
    "TownplanSettings",
]


#: Where glyphs look for fonts unless told otherwise.
DEFAULT_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


def _split(value: Any, separator: str = ",") -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(separator) if part.strip())
    return value


class ServerSettings(Section):
    """The HTTP side: where to listen, the public URL, which route groups are switched on."""

    host: str = "127.0.0.1"
    """Address `fondplan serve` listens on."""
    port: int = 8080
    """Port `fondplan serve` listens on."""
    workers: int = 1
    """Server processes of `fondplan serve`."""
    public_url: str | None = None
    """Absolute URL the server is reached at (e.g. behind a proxy); overrides X-Forwarded-*."""
    disable: Annotated[frozenset[str], NoDecode] = frozenset()
    """Route groups switched off, comma-separated (tiles, raster, styles, assets, ops, viewer,
    routing, townplans)."""
    tiles_file: Path | None = None
    """Serve this PMTiles/MBTiles file instead of the database."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    """Origins allowed by CORS, comma-separated."""
    forwarded_allow_ips: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1", "::1")
    """Peers (addresses or networks, comma-separated; `*` for any) whose `X-Forwarded-*` headers
    are believed; from anyone else they are dropped."""
    fast_budget: float = 3.0
    """Estimated milliseconds of event-loop work a routing request may cost to be answered on
    the fast path; dearer ones go to the worker threads."""
    switch_interval: float = 0.005
    """Longest a thread holds the GIL when others wait (seconds). Routes are computed out of
    the server process and its worker threads mostly wait for the database, so a short one
    only makes the busy event loop hand the GIL over mid-request more often, and each time
    wait for the thread that took it to be given the CPU again."""
    stall_trace: float = 0.0
    """Debugging: event-loop stalls from this many seconds on are logged with where the loop
    spent them (sampled stacks); 0 traces none."""
    background_nice: int = 10
    """Niceness added to the render processes (raster tiles, plan maps), so on a busy machine
    the CPU goes to answering cached requests first (0: the server's own priority)."""
    routing_nice: int = 5
    """Niceness added to the routing server and its engines: routes (milliseconds of CPU, a
    long one with steps hundreds) yield the CPU to cached answers, not to the renders."""
    database_nice: int = 5
    """Niceness added to the PostgreSQL backends cutting the server's uncached vector tiles,
    when they run on this machine (the embedded cluster, a local server run by the same user):
    their queries yield the CPU to cached answers (0: the database's own priority)."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a request's headers before it is closed."""
    keep_alive: int = 5
    """Seconds an idle keep-alive connection stays open."""
    limit_concurrency: int = 1024
    """Connections (and requests) a server process takes at once; beyond, 503."""
    graceful_shutdown: int = 10
    """Seconds shutdown waits for requests in flight before closing them."""
    worker_healthcheck: int = 30
    """Seconds a worker of `--workers N` may leave its supervisor's health check unanswered before
    it is killed and replaced (uvicorn's 5 s kills workers still loading on a busy machine)."""
    supervisor_pid: int | None = None
    """Set by `fondplan serve --workers N` in its workers: the supervisor's process id."""
    metrics_dir: Path | None = None
    """Set by `fondplan serve --workers N`: where workers share their metrics."""

    @field_validator("disable", mode="before")
    @classmethod
    def _split_disable(cls, value: Any) -> Any:
        value = _split(value)
        return frozenset(value) if isinstance(value, tuple) else value

    @field_validator("cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return _split(value)


class TileSettings(Section):
    """How vector tiles are cut from PostGIS and how long clients may keep them."""

    env_prefix: ClassVar[str] = "TILE_"

    extent: int = 4096
    """Tile extent (MVT coordinate units per tile side)."""
    buffer: int = 64
    """Geometry kept beyond the tile edge (units of the extent)."""
    statement_timeout_ms: int = 15000
    """Longest a tile query may run before it is cancelled (milliseconds)."""
    connect_timeout: float = 3.0
    """Seconds a new database connection may take."""
    retry_after: float = 2.0
    """Seconds database work is refused (503 + Retry-After) after a connection failure, before
    the next request tries again."""
    max_age: int = 3600
    """`Cache-Control: max-age` of tiles, TileJSON and styles (seconds)."""

    def deadline(self) -> float:
        """Seconds after which a database call is cut on the client side (a hung server)."""
        return self.statement_timeout_ms / 1000 + 5.0


class CacheSettings(Section):
    """The tile cache: a bounded in-memory LRU, then an optional folder on disk."""

    env_prefix: ClassVar[str] = "CACHE_"

    memory_bytes: int = 256 * 1024 * 1024
    """Tiles kept in memory (bytes)."""
    disk: bool = True
    """Keep tiles on disk too."""
    dir: Path | None = None
    """Folder of the disk tile cache; unset: `<data dir>/tiles`."""
    version_ttl: float = 10.0
    """Seconds between two reads of the data version (besides LISTEN)."""


class LimitSettings(Section):
    """Requests of each kind handled at once; up to ``queue`` more wait up to ``wait`` seconds.

    Tiles and raster count only cache misses (database queries, renders).
    """

    env_prefix: ClassVar[str] = "LIMIT_"

    tiles: int = 0
    """Tile database queries at once, per server process; 0: twice the CPUs the server may use,
    shared among its processes (`FONDPLAN_WORKERS`), at least 4 each. More cut no more tiles
    from a database on the same machine, and take the CPU its cached answers need."""
    raster: int = 4
    """Raster renders handed to the render process at once (the others wait here): about twice
    its threads, so none queues inside it long enough to reach `FONDPLAN_RASTER_TIMEOUT`,
    which would replace the process and fail every render in it."""
    routes: int = 8
    """Routing requests computed at once (worker threads)."""
    plans: int = 2
    """Town plan requests looking up their plan in the database at once (waiting for a plan
    being drawn takes no place; see `FONDPLAN_TOWNPLAN_WORKERS` and `_QUEUE` for drawings)."""
    static: int = 8
    """Styles, fonts, sprites and viewer files served at once."""
    ops: int = 2
    """Health and metrics requests at once."""
    queue: int = 1024
    """Requests of one kind that may wait for their turn, beyond which 503 at once: as many as
    a server process takes connections (`FONDPLAN_LIMIT_CONCURRENCY`), so the clients it
    accepts are refused only by the time limit `FONDPLAN_LIMIT_WAIT`."""
    wait: float = 20.0
    """Seconds a request may wait for its turn, before 503."""

    def limit(self, kind: str, workers: int = 1) -> int:
        """The limit of ``kind`` in each of ``workers`` server processes."""
        if kind == "tiles" and self.tiles <= 0:
            # At least 4: each process also gzips and stores what it cuts, holding its place.
            return max(4, math.ceil(2 * _usable_cpus() / max(1, workers)))
        return int(getattr(self, kind))


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class RasterSettings(Section):
    """Raster rendering: pool size, queue limit and per-render timeout."""

    env_prefix: ClassVar[str] = "RASTER_"

    threads: int = 2
    """Render threads (MapLibre renderers) in the render process."""
    max_pending: int = 32
    """Renders queued or running at once; beyond it requests get 503 at once."""
    timeout: float = 30.0
    """Seconds a render may take before the render process is restarted and 503 answered."""
    cache_bytes: int = 256 * 1024 * 1024
    """Rendered PNGs kept in memory (bytes)."""
    tile_connections: int = 4
    """Vector tiles the render process reads from the source at once."""
    max_renders: int = 2000
    """Renders after which the render process is replaced by a fresh one (0: never), which
    keeps MapLibre Native's memory flat."""


class AssetSettings(Section):
    """Fonts for glyphs, and the disk caches of glyphs and sprites."""

    font_dirs: Annotated[tuple[Path, ...], NoDecode] = DEFAULT_FONT_DIRS
    """Folders searched for the fonts of glyphs, separated by `:`."""
    glyph_cache_dir: str | None = None
    """Folder of the glyph disk cache; unset: `<data dir>/cache/glyphs`; empty: memory only."""
    sprite_cache_dir: str | None = None
    """Folder of the sprite disk cache; unset: `<data dir>/cache/sprites`; empty: memory
    only."""

    @field_validator("font_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return DEFAULT_FONT_DIRS
        return _split(value, ":")


def _cache_folder(value: str | None, data_dir: Path, name: str) -> Path | None:
    """``value`` if set, else ``data_dir/cache/<name>``; ``None`` when set but empty.

    Made absolute so a render process started elsewhere finds the same files.
    """
    if value is not None:
        return Path(value).resolve() if value.strip() else None
    return (data_dir / "cache" / name).resolve()


class Settings(ImportSettings):
    """Everything the server and the ``fondplan`` commands need, one section per concern."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    tiles: TileSettings = Field(default_factory=TileSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    raster: RasterSettings = Field(default_factory=RasterSettings)
    townplan: TownplanSettings = Field(default_factory=TownplanSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)

    def cache_dir(self) -> Path:
        """The folder of the disk tile cache."""
        return self.cache.dir or self.database.data_dir / "tiles"

    def glyph_cache_dir(self) -> Path | None:
        """The glyph disk cache shared by the server and its render processes, if any."""
        return _cache_folder(self.assets.glyph_cache_dir, self.database.data_dir, "glyphs")

    def sprite_cache_dir(self) -> Path | None:
        """The sprite disk cache shared by the server and its render processes, if any."""
        return _cache_folder(self.assets.sprite_cache_dir, self.database.data_dir, "sprites")


def main(argv: list[str]) -> int:
    """Print the settings table, or with ``--readme`` write it into README.md."""
    table = markdown_table(Settings)
    if argv == ["--readme"]:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        readme.write_text(replace_table(readme.read_text("utf-8"), table), "utf-8")
        return 0
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

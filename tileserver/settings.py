"""Tile server settings: one pydantic-settings class per concern, all read from FONDPLAN_*."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from osmimport.settings import DatabaseSettings


class ServerSettings(BaseSettings):
    """The HTTP side: where to listen, the public URL, which route groups are switched on."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: Absolute URL the server is reached at (e.g. behind a proxy); overrides X-Forwarded-*.
    public_url: str | None = None
    #: Route groups switched off, comma-separated (e.g. ``viewer,raster``).
    disable: Annotated[frozenset[str], NoDecode] = frozenset()
    #: Serve this PMTiles/MBTiles file instead of the database.
    tiles_file: Path | None = None
    #: Origins allowed by CORS.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    #: Peers (addresses or networks, comma-separated; ``*`` for any) whose ``X-Forwarded-*``
    #: headers are believed; from anyone else they are dropped.
    forwarded_allow_ips: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1", "::1")
    #: Estimated milliseconds of work a request may cost on the event loop (the routing fast
    #: path); dearer ones go to the worker threads.
    fast_budget: float = 3.0
    #: Longest a thread holds the GIL when others wait (seconds; Python's default is 0.005):
    #: shorter keeps the event loop, which answers cached tiles, responsive while worker
    #: threads compute routes.
    switch_interval: float = 0.001
    #: Seconds a connection may take to send a request's headers before it is closed.
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection stays open.
    keep_alive: int = 5
    #: Connections (and requests) a server process takes at once; beyond, uvicorn answers 503.
    limit_concurrency: int = 1024
    #: Seconds shutdown waits for requests in flight before closing them.
    graceful_shutdown: int = 10
    #: Seconds a worker of ``--workers N`` may leave its supervisor's health check unanswered
    #: before it is killed and replaced (uvicorn's 5 s kill starting workers in a loop on a
    #: busy machine, as they load their extension modules).
    worker_healthcheck: int = 30
    #: Set by ``fondplan serve --workers N`` in its workers: the supervisor's process id.
    supervisor_pid: int | None = None
    #: Set by ``fondplan serve --workers N``: where workers share their metrics.
    metrics_dir: Path | None = None

    @field_validator("disable", mode="before")
    @classmethod
    def _split_disable(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


class TileSettings(BaseSettings):
    """How vector tiles are cut from PostGIS and how long clients may keep them."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_TILE_", env_file=".env", extra="ignore")

    extent: int = 4096
    buffer: int = 64
    #: Longest a tile query may run before it is cancelled (milliseconds).
    statement_timeout_ms: int = 15000
    #: Seconds a new database connection may take.
    connect_timeout: float = 3.0
    #: Seconds database work is refused (503 + Retry-After) after a connection failure, before
    #: the next request tries again.
    retry_after: float = 2.0
    #: ``Cache-Control: max-age`` of tiles, TileJSON and styles (seconds).
    max_age: int = 3600

    def deadline(self) -> float:
        """Seconds after which a database call is cut on the client side (a hung server)."""
        return self.statement_timeout_ms / 1000 + 5.0


class CacheSettings(BaseSettings):
    """The tile cache: a bounded in-memory LRU, then an optional folder on disk."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_CACHE_", env_file=".env", extra="ignore")

    memory_bytes: int = 256 * 1024 * 1024
    disk: bool = True
    #: Folder of the disk cache; defaults to ``<FONDPLAN_DATA_DIR>/tiles``.
    dir: Path | None = None
    #: Seconds between two reads of the data version (besides LISTEN fondplan_data_version).
    version_ttl: float = 10.0


class LimitSettings(BaseSettings):
    """Requests of each kind handled at once; as many again per ``queue_factor`` may wait.

    Tiles and raster count only cache misses (database queries, renders).
    """

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_LIMIT_", env_file=".env", extra="ignore")

    tiles: int = 16
    raster: int = 32
    routes: int = 8
    plans: int = 2
    static: int = 8
    ops: int = 2
    #: Waiting requests allowed per running one, before 503.
    queue_factor: int = 8
    #: Seconds a request may wait for its turn, before 503.
    wait: float = 20.0

    def limit(self, kind: str) -> int:
        """The limit of ``kind``."""
        return int(getattr(self, kind))


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs; each part reads its own environment variables."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    tiles: TileSettings = field(default_factory=TileSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def cache_dir(self) -> Path:
        """The folder of the disk tile cache."""
        return self.cache.dir or self.database.data_dir / "tiles"

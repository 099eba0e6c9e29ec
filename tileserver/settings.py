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
    #: Worker threads for database work; the connection pool has as many connections.
    threads: int = 40
    #: Route groups switched off, comma-separated (e.g. ``viewer,raster``).
    disable: Annotated[frozenset[str], NoDecode] = frozenset()
    #: Serve this PMTiles/MBTiles file instead of the database.
    tiles_file: Path | None = None
    #: Origins allowed by CORS.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)

    @field_validator("disable", mode="before")
    @classmethod
    def _split_disable(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins", mode="before")
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
    #: ``Cache-Control: max-age`` of tiles, TileJSON and styles (seconds).
    max_age: int = 3600


class CacheSettings(BaseSettings):
    """The tile cache: a bounded in-memory LRU, then an optional folder on disk."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_CACHE_", env_file=".env", extra="ignore")

    memory_bytes: int = 256 * 1024 * 1024
    disk: bool = True
    #: Folder of the disk cache; defaults to ``<FONDPLAN_DATA_DIR>/tiles``.
    dir: Path | None = None
    #: Seconds between two reads of the data version (besides LISTEN fondplan_data_version).
    version_ttl: float = 10.0


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs; each part reads its own environment variables."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    tiles: TileSettings = field(default_factory=TileSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)

    def cache_dir(self) -> Path:
        """The folder of the disk tile cache."""
        return self.cache.dir or self.database.data_dir / "tiles"

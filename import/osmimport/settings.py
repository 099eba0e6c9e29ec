"""Database settings: an external PostGIS by URL, or the embedded cluster under the data dir."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """Where the data lives; ``FONDPLAN_DATABASE_URL`` unset means the embedded PostGIS."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_", env_file=".env", extra="ignore")

    database_url: str | None = None
    data_dir: Path = Path("var")
    #: Database name inside the embedded cluster (tests use throwaway ones).
    embedded_dbname: str = "fondplan"

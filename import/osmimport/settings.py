"""Database settings: an external PostGIS by URL, or the embedded cluster under the data dir."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from osmimport.paths import default_data_dir, is_checkout


class DatabaseSettings(BaseSettings):
    """Where the data lives; ``FONDPLAN_DATABASE_URL`` unset means the embedded PostGIS."""

    model_config = SettingsConfigDict(env_prefix="FONDPLAN_", env_file=".env", extra="ignore")

    database_url: str | None = None
    #: ``FONDPLAN_DATA_DIR``, else the checkout's ``var/``, else the per-user data folder.
    data_dir: Path = Field(default_factory=default_data_dir)
    #: Database name inside the embedded cluster (tests use throwaway ones).
    embedded_dbname: str = "fondplan"

    def data_dir_origin(self) -> str:
        """How the data folder was chosen, for messages."""
        if "data_dir" in self.model_fields_set:
            return "FONDPLAN_DATA_DIR"
        if is_checkout(self.data_dir.parent):
            return "the checkout's var/ folder"
        return "the per-user data folder"


class CommuneSettings(BaseSettings):
    """Which administrative boundaries are communes (town plans), per country (ISO 3166-1).

    ``FONDPLAN_COMMUNE_LEVELS='{"FR": [8], "DE": [8, 6]}'``: the first level of a country is
    its commune level; a further level counts where no commune of the first lies inside it
    (German kreisfreie Städte are level 6 with no level 8 inside). Countries not listed, and
    boundaries whose country is unknown, use ``FONDPLAN_COMMUNE_DEFAULT_LEVELS``.
    """

    model_config = SettingsConfigDict(
        env_prefix="FONDPLAN_COMMUNE_", env_file=".env", extra="ignore"
    )

    levels: dict[str, list[int]] = {
        "FR": [8],
        "DE": [8, 6],
        "LU": [8],
        "CH": [8],
        "BE": [8],
        "LI": [8],
    }
    default_levels: list[int] = [8]

    def all_levels(self) -> frozenset[int]:
        """Every level a commune can have in some country."""
        return frozenset(self.default_levels).union(*self.levels.values())

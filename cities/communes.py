"""Commune lookup by name (accent- and case-insensitive) or INSEE code, with close suggestions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from psycopg2 import sql
from shapely.geometry.base import BaseGeometry

from cities.collation import fold, sort_key
from cities.db import table, table_exists
from cities.errors import IncompleteBoundary, NoData, UnknownCommune
from osmimport import schema
from osmimport.database import load_sql


@dataclass(frozen=True)
class Commune:
    """A commune of the loaded data, as listed (geometry fetched on demand)."""

    osm_id: int
    name: str
    name_fr: str | None
    insee: str | None
    admin_level: int | None
    country: str | None
    complete: bool
    bbox: tuple[float, float, float, float]
    latitude: float

    @property
    def label(self) -> str:
        """The name printed on plans: the French name when the data has one."""
        return self.name_fr or self.name

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name ("Saint-Louis" → "saint-louis")."""
        return "-".join(fold(self.label).split()) or str(self.osm_id)


def list_communes(
    conn: psycopg2.extensions.connection,
    search: str | None = None,
    *,
    admin_level: int | None = None,
) -> list[Commune]:
    """Every commune, sorted in French order; ``search`` keeps names containing the text.

    ``admin_level`` lists every administrative area of that level instead of the communes the
    commune settings chose at import.
    """
    if not table_exists(conn, schema.COMMUNES_TABLE):
        raise NoData("no data loaded: run `fondplan import FILE` first")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = 'commune'",
            (schema.SCHEMA, schema.COMMUNES_TABLE),
        )
        rule = sql.Identifier("commune") if cur.fetchone() else sql.SQL("TRUE")
        statement = sql.SQL(load_sql("cities", "communes.sql")).format(
            communes=table(schema.COMMUNES_TABLE), commune_rule=rule
        )
        cur.execute(statement, {"level": admin_level})
        rows = cur.fetchall()
    communes = [
        Commune(
            osm_id=row[0],
            name=row[1] or row[2],
            name_fr=row[2],
            insee=row[3],
            admin_level=row[4],
            country=row[5],
            complete=bool(row[6]) if row[6] is not None else True,
            bbox=(row[7], row[8], row[9], row[10]),
            latitude=row[11],
        )
        for row in rows
    ]
    if search:
        needle = fold(search)
        communes = [
            c
            for c in communes
            if needle in fold(c.name) or needle in fold(c.label) or (c.insee or "") == search
        ]
    return sorted(communes, key=lambda c: sort_key(c.label))


def find_commune(
    conn: psycopg2.extensions.connection,
    *,
    name: str | None = None,
    insee: str | None = None,
    require_complete: bool = True,
    admin_level: int | None = None,
) -> Commune:
    """The commune named ``name`` (accents and case ignored) or with INSEE code ``insee``.

    Raises UnknownCommune with the closest names, or IncompleteBoundary when the boundary
    could not be closed in the data and ``require_complete`` is set. ``admin_level`` looks
    among the areas of that level instead of the communes.
    """
    communes = list_communes(conn, admin_level=admin_level)
    if insee is not None:
        found = [c for c in communes if (c.insee or "").strip() == insee.strip()]
        query_text = f"INSEE {insee}"
    else:
        if not name:
            raise UnknownCommune("", [])
        wanted = fold(name)
        found = [c for c in communes if wanted in (fold(c.name), fold(c.label))]
        if not found and wanted.isdigit():
            found = [c for c in communes if (c.insee or "") == name.strip()]
        query_text = name
    if not found:
        raise UnknownCommune(query_text, suggest(communes, name or insee or ""))
    # Same name in two countries/departments: the complete one with the lowest admin level.
    found.sort(key=lambda c: (not c.complete, c.admin_level or 99, c.osm_id))
    commune = found[0]
    if require_complete and not commune.complete:
        raise IncompleteBoundary(commune.label)
    return commune


def suggest(communes: list[Commune], text: str, limit: int = 5) -> list[str]:
    """The names closest to ``text`` (by folded spelling, then by shared prefix)."""
    by_folded: dict[str, str] = {}
    for commune in communes:
        by_folded.setdefault(fold(commune.label), commune.label)
        if commune.insee:
            by_folded.setdefault(commune.insee, f"{commune.label} ({commune.insee})")
    close = difflib.get_close_matches(fold(text), list(by_folded), n=limit, cutoff=0.5)
    if not close:
        prefix = fold(text)[:3]
        close = [key for key in by_folded if prefix and key.startswith(prefix)][:limit]
    return [by_folded[key] for key in close]


def commune_geometry(conn: psycopg2.extensions.connection, commune: Commune) -> BaseGeometry:
    """The commune's (multi)polygon in EPSG:3857."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT ST_AsBinary(geom) FROM {} WHERE osm_id = %s").format(
                table(schema.COMMUNES_TABLE)
            ),
            (commune.osm_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise UnknownCommune(commune.label, [])
    geometry: BaseGeometry = shapely.from_wkb(bytes(row[0]))
    return geometry.buffer(0) if not geometry.is_valid else geometry

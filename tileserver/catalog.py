"""What the served schema holds (layer tables, their columns, meta facts) and the tile SQL."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.database import load_sql
from osmimport.dataversion import version_expression, version_from_meta

#: What the tile query puts in a tile, bumped when that changes (2: ``name_label``), so caches of
#: tiles cut by an older query are not served for the same data version.
TILE_FORMAT = 2

#: TileJSON field types by PostgreSQL type.
_NUMBER_TYPES = ("smallint", "integer", "bigint", "real", "double precision", "numeric")


@dataclass(frozen=True)
class Column:
    """A column of a layer table."""

    name: str
    type: str

    @property
    def tilejson_type(self) -> str:
        """The type name TileJSON ``fields`` uses: String, Number or Boolean."""
        if self.type.startswith(_NUMBER_TYPES):
            return "Number"
        if self.type == "boolean":
            return "Boolean"
        return "String"


@dataclass(frozen=True)
class Catalog:
    """A snapshot of the served schema: layer table columns and the ``meta`` facts."""

    columns: dict[str, tuple[Column, ...]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    has_meta: bool = False

    @property
    def data_version(self) -> str:
        """The version of the loaded data (NO_DATA before the first import)."""
        return version_from_meta(self.meta)

    def attributes(self, table: str) -> tuple[Column, ...]:
        """The attributes of ``table``'s tile features: every non-system column, and the
        computed French-first label where the table has names."""
        stored = tuple(
            c for c in self.columns.get(table, ()) if c.name not in schema.SYSTEM_COLUMNS
        )
        if self.has_column(table, "name") and self.has_column(table, "name_fr"):
            return (*stored, Column(schema.LABEL_COLUMN, "text"))
        return stored

    def table_for(self, layer: schema.Layer, zoom: int) -> str | None:
        """The best table of ``layer`` for ``zoom`` that the served schema has, if any."""
        return next((t for t in layer.tables_for_zoom(zoom) if t in self.columns), None)

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` has ``column``."""
        return any(c.name == column for c in self.columns.get(table, ()))

    def vector_layers(self) -> list[dict[str, Any]]:
        """TileJSON ``vector_layers``: every layer of the definition with its fields.

        Fields are the layer's defined attributes; where the served schema has the layer's
        tables, only those they hold (data imported by an older definition lacks newer ones).
        """
        described: list[dict[str, Any]] = []
        for layer in schema.LAYERS:
            fields = layer_fields(layer)
            served = {
                column.name
                for zoom in range(layer.minzoom, layer.maxzoom + 1)
                if (table := self.table_for(layer, zoom)) is not None
                for column in self.attributes(table)
            }
            if served:
                fields = {name: kind for name, kind in fields.items() if name in served}
            described.append(
                {
                    "id": layer.name,
                    "fields": fields,
                    "minzoom": layer.minzoom,
                    "maxzoom": layer.maxzoom,
                    "description": layer.description,
                }
            )
        return described

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The loaded area as (west, south, east, north) in degrees, when the import stored it."""
        return parse_bbox(self.meta.get("bbox"))

    def center(self) -> tuple[float, float] | None:
        """Where a map of the data opens (lon, lat): a building or road near the bbox's middle.

        Data imported before the import stored it gets the middle of the bbox.
        """
        point = parse_point(self.meta.get("center"))
        if point is not None:
            return point
        bbox = self.bbox()
        if bbox is None:
            return None
        return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2


def layer_fields(layer: schema.Layer) -> dict[str, str]:
    """A layer's tile attributes and their TileJSON types, from its definition (with the
    French-first label where the layer has names)."""
    columns = [Column(name, type_) for name, type_ in layer.columns]
    if {"name", "name_fr"} <= set(layer.column_names):
        columns.append(Column(schema.LABEL_COLUMN, "text"))
    return {column.name: column.tilejson_type for column in columns}


def parse_point(value: Any) -> tuple[float, float] | None:
    """A (lon, lat) from a JSON list ``[lon, lat]``; None when absent or malformed."""
    if value is None:
        return None
    try:
        raw = json.loads(value) if isinstance(value, str) else value
        lon, lat = (float(v) for v in raw)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    return lon, lat


def parse_bbox(value: Any) -> tuple[float, float, float, float] | None:
    """A bbox from ``"W,S,E,N"``, a JSON list or a JSON object with west/south/east/north."""
    if value is None:
        return None
    raw: Any = value
    if isinstance(value, str):
        try:
            raw = json.loads(value)
        except ValueError:
            raw = value.replace(" ", ",").split(",")
    if isinstance(raw, dict):
        raw = [raw.get(k) for k in ("west", "south", "east", "north")]
    try:
        numbers = [float(v) for v in raw if v not in ("", None)]
    except (TypeError, ValueError):
        return None
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        return None
    west, south, east, north = numbers
    return west, south, east, north


def layer_tables() -> list[str]:
    """Every table any layer reads at some zoom (full detail and generalised copies)."""
    tables: list[str] = []
    for layer in schema.LAYERS:
        for zoom in range(layer.minzoom, layer.maxzoom + 1):
            for table in layer.tables_for_zoom(zoom):
                if table not in tables:
                    tables.append(table)
    return tables


def read_catalog(conn: psycopg2.extensions.connection) -> Catalog:
    """Read the layer tables' columns and the meta facts of the served schema."""
    columns: dict[str, list[Column]] = {}
    meta: dict[str, str] = {}
    with conn.cursor() as cur:
        cur.execute(
            load_sql("tileserver", "layer_columns.sql"),
            {"schema": schema.SCHEMA, "tables": [*layer_tables(), schema.META_TABLE]},
        )
        for table, column, type_ in cur.fetchall():
            columns.setdefault(table, []).append(Column(column, type_))
        has_meta = schema.META_TABLE in columns
        if has_meta:
            cur.execute(
                sql.SQL(load_sql("tileserver", "meta.sql")).format(
                    schema=sql.Identifier(schema.SCHEMA), meta=sql.Identifier(schema.META_TABLE)
                )
            )
            meta = {str(k): str(v) for k, v in cur.fetchall() if v is not None}
    conn.rollback()
    columns.pop(schema.META_TABLE, None)
    return Catalog({t: tuple(c) for t, c in columns.items()}, meta, has_meta)


def version_query(catalog: Catalog) -> sql.Composable:
    """An expression giving the data version, read in the tile query's own snapshot."""
    if not catalog.has_meta:
        return sql.SQL("NULL::text")
    return version_expression()


def _attribute(column: Column) -> sql.Composable:
    """The select-list item of a tile attribute (``g`` is the layer table)."""
    if column.name == schema.LABEL_COLUMN:
        return sql.SQL(", COALESCE(g.{}, g.{}) AS {}").format(
            sql.Identifier("name_fr"), sql.Identifier("name"), sql.Identifier(column.name)
        )
    return sql.SQL(", g.{}").format(sql.Identifier(column.name))


def tile_query(catalog: Catalog, zoom: int, *, extent: int, buffer: int) -> sql.Composed:
    """The one statement that cuts a tile at ``zoom`` (parameters ``z``, ``x``, ``y``)."""
    template = load_sql("tileserver", "tile_layer.sql").strip()
    parts: list[sql.Composable] = []
    for layer in schema.LAYERS:
        if not layer.minzoom <= zoom <= layer.maxzoom:
            continue
        table = catalog.table_for(layer, zoom)
        if table is None or not catalog.has_column(table, schema.GEOM_COLUMN):
            continue
        attributes = catalog.attributes(table)
        attrs = sql.SQL("").join(_attribute(c) for c in attributes)
        zoom_filter: sql.Composable = sql.SQL("TRUE")
        if catalog.has_column(table, schema.MINZOOM_COLUMN):
            zoom_filter = sql.SQL("g.{} <= %(z)s").format(sql.Identifier(schema.MINZOOM_COLUMN))
        # Ties broken by row position (merged generalised rows share OSM ids): whatever plan
        # runs, the same data gives the same bytes, so ETags and exports are stable.
        keys: list[sql.Composable] = []
        if catalog.has_column(table, schema.SORT_COLUMN):
            keys.append(sql.SQL("g.{} NULLS FIRST").format(sql.Identifier(schema.SORT_COLUMN)))
        keys.append(sql.SQL("g.ctid"))
        order: sql.Composable = sql.SQL(", ").join(keys)
        parts.append(
            sql.SQL(template).format(
                layer=sql.Literal(layer.name),
                extent=sql.Literal(extent),
                buffer=sql.Literal(buffer),
                margin=sql.Literal(buffer / extent),
                geom=sql.Identifier(schema.GEOM_COLUMN),
                attributes=attrs,
                schema=sql.Identifier(schema.SCHEMA),
                table=sql.Identifier(table),
                zoom_filter=zoom_filter,
                order=order,
            )
        )
    layers: sql.Composable = sql.SQL(" || ").join(parts) if parts else sql.SQL("''::bytea")
    return sql.SQL(load_sql("tileserver", "tile.sql")).format(
        version=version_query(catalog), layers=layers
    )

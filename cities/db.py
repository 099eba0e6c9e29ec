"""Database access for town plans: qualified identifiers of the served schema, SQL files, meta."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from osmimport import database, schema
from osmimport.database import load_sql
from osmimport.dataversion import read_meta_with


def table(name: str) -> sql.Identifier:
    """``osm.<name>`` as a quoted identifier."""
    return sql.Identifier(schema.SCHEMA, name)


def query(name: str, **tables: str) -> sql.Composed:
    """The SQL file ``cities/sql/<name>`` with ``{placeholders}`` bound to served tables."""
    return sql.SQL(load_sql("cities", name)).format(
        **{key: table(value) for key, value in tables.items()}
    )


def layer_query(name: str, **layers: str) -> sql.Composed:
    """``query`` with each placeholder bound to the table of the vector tile layer named."""
    return query(name, **{key: schema.LAYER_BY_NAME[layer].table for key, layer in layers.items()})


def table_exists(conn: psycopg2.extensions.connection, name: str) -> bool:
    """Whether ``osm.<name>`` exists (the data may not be loaded yet)."""
    with conn.cursor() as cur:
        return database.table_exists(cur, schema.SCHEMA, name)


def meta_value(conn: psycopg2.extensions.connection, key: str) -> Any:
    """A value of ``osm.meta`` (decoded JSON), or None when absent or nothing is loaded."""
    with conn.cursor() as cur:
        meta = read_meta_with(cur)
    return None if meta is None else meta.get(key)

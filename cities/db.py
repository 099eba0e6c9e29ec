"""Database access for town plans: qualified identifiers of the served schema, SQL files, meta."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.database import load_sql


def table(name: str) -> sql.Identifier:
    """``osm.<name>`` as a quoted identifier."""
    return sql.Identifier(schema.SCHEMA, name)


def query(name: str, **tables: str) -> sql.Composed:
    """The SQL file ``cities/sql/<name>`` with ``{placeholders}`` bound to served tables."""
    return sql.SQL(load_sql("cities", name)).format(
        **{key: table(value) for key, value in tables.items()}
    )


def table_exists(conn: psycopg2.extensions.connection, name: str) -> bool:
    """Whether ``osm.<name>`` exists (the data may not be loaded yet)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema.SCHEMA}.{name}",))
        row = cur.fetchone()
    return bool(row and row[0])


def meta_value(conn: psycopg2.extensions.connection, key: str) -> Any:
    """A value of ``osm.meta`` (decoded JSON), or None when absent or nothing is loaded."""
    if not table_exists(conn, schema.META_TABLE):
        return None
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT value FROM {} WHERE key = %s").format(table(schema.META_TABLE)),
            (key,),
        )
        row = cur.fetchone()
    return None if row is None else row[0]

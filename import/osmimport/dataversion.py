"""The served data's meta table: its facts, and the data version (which import they come from)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.database import load_sql, table_exists

#: The data version when nothing is loaded (no meta table, or no version in it).
NO_DATA = "none"
#: The meta key holding it.
DATA_VERSION_KEY = "data_version"
#: The channel an import NOTIFYs (payload: the new data version) once it swapped the data in.
NOTIFY_CHANNEL = "fondplan_data_version"


def version_expression() -> sql.Composable:
    """An SQL expression giving the served data version as text (NULL when absent), to read it
    inside another query's snapshot (e.g. with the tile it versions)."""
    return sql.SQL(load_sql("osmimport", "data_version.sql").strip()).format(
        schema=sql.Identifier(schema.SCHEMA), meta=sql.Identifier(schema.META_TABLE)
    )


def version_from_meta(meta: Mapping[str, Any] | None) -> str:
    """The data version in meta facts already read, NO_DATA when there is none."""
    value = meta.get(DATA_VERSION_KEY) if meta else None
    return str(value) if value not in (None, "") else NO_DATA


def read_meta_with(cur: psycopg2.extensions.cursor) -> dict[str, Any] | None:
    """The facts of the served meta table (JSON values decoded), None when nothing is loaded."""
    if not table_exists(cur, schema.SCHEMA, schema.META_TABLE):
        return None
    cur.execute(
        sql.SQL("SELECT key, value FROM {}").format(
            sql.Identifier(schema.SCHEMA, schema.META_TABLE)
        )
    )
    return dict(cur.fetchall())


def read_data_version(conn: psycopg2.extensions.connection) -> str:
    """The data version of the served schema, NO_DATA when nothing is loaded."""
    with conn.cursor() as cur:
        return version_from_meta(read_meta_with(cur))

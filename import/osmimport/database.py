"""Connections: resolve the database URL (external or embedded) and make sure PostGIS is there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from osmimport.embedded import EmbeddedCluster
from osmimport.errors import DatabaseError
from osmimport.settings import DatabaseSettings


def database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The URL every command connects to; starts the embedded cluster unless one is given."""
    if settings.database_url:
        return settings.database_url
    cluster = EmbeddedCluster(settings.data_dir)
    if start:
        cluster.start()
        ensure_database(cluster.url("postgres"), settings.embedded_dbname)
    return cluster.url(settings.embedded_dbname)


#: Defaults of every connection: a bounded connect and TCP keepalives, so a dead or hung
#: server costs seconds, not a thread for good.
CONNECT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def serving_url(settings: DatabaseSettings) -> str:
    """The URL the server reads with: the embedded cluster's read-only role, else the URL given.

    (An external database's URL is used as it is: give the server a read-only role there.)
    """
    if settings.database_url:
        return settings.database_url
    cluster = EmbeddedCluster(settings.data_dir)
    cluster.start()
    ensure_database(cluster.url("postgres"), settings.embedded_dbname)
    return cluster.reader_url(settings.embedded_dbname)


def existing_database_url(settings: DatabaseSettings) -> str:
    """The URL for a command that only reads: never creates nor starts the embedded cluster.

    Raises DatabaseError saying where it looked when there is no running cluster there.
    """
    if settings.database_url:
        return settings.database_url
    cluster = EmbeddedCluster(settings.data_dir)
    where = f"{cluster.data_dir} ({settings.data_dir_origin()})"
    if cluster.info() is None:
        raise DatabaseError(
            f"no database: FONDPLAN_DATABASE_URL is unset and there is no embedded PostGIS in "
            f"{where}; import data with `fondplan import FILE`, or set FONDPLAN_DATA_DIR or "
            "FONDPLAN_DATABASE_URL"
        )
    if not cluster.is_running():
        raise DatabaseError(
            f"the embedded PostGIS in {where} is stopped: start it with `fondplan db start`"
        )
    return cluster.url(settings.embedded_dbname)


def connect(url: str, **kwargs: Any) -> psycopg2.extensions.connection:
    """A psycopg2 connection with a clear error when the server is unreachable."""
    kwargs = {**CONNECT_DEFAULTS, **kwargs}
    try:
        conn: psycopg2.extensions.connection = psycopg2.connect(url, **kwargs)
        return conn
    except psycopg2.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database: {str(exc).strip()}") from exc


def ensure_database(admin_url: str, dbname: str) -> None:
    """Create ``dbname`` with the postgis extension if it does not exist yet."""
    conn = connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    finally:
        conn.close()
    target = admin_url.rsplit("/", 1)[0] + "/" + dbname
    conn = connect(target)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    finally:
        conn.close()


def drop_database(admin_url: str, dbname: str) -> None:
    """Drop ``dbname``, closing its other sessions first."""
    conn = connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    finally:
        conn.close()


def relation_exists(cur: psycopg2.extensions.cursor, schema_name: str, name: str) -> bool:
    """Whether the table or view ``schema_name.name`` exists."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema_name}.{name}",))
    row = cur.fetchone()
    return bool(row and row[0])


def load_sql(package: str, name: str) -> str:
    """The text of ``sql/<name>`` shipped inside ``package``."""
    return resources.files(package).joinpath("sql", name).read_text(encoding="utf-8")


@contextmanager
def transaction(url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose work commits on success and rolls back on any error."""
    conn = connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()

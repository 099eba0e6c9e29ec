"""Small query helpers of the import tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg2


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` run on the database at ``url``."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first value of the first row of ``sql``."""
    return query(url, sql, params)[0][0]


def cli(url: str, *args: str, module: str = "osmimport.cli") -> subprocess.CompletedProcess[str]:
    """``fondplan`` import commands run on the database at ``url``, in a child process
    (``module="tileserver.cli"``: the whole ``fondplan`` command, with its hooks)."""
    env = {**os.environ, "FONDPLAN_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

"""Shared fixtures: a real PostGIS (embedded unless FONDPLAN_DATABASE_URL is set), throwaway DBs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from osmimport.database import drop_database, ensure_database
from osmimport.embedded import EmbeddedCluster

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
TEST_DATA = ROOT / "tests" / "data"
LIECHTENSTEIN = SAMPLE / "liechtenstein-2021-05-05.osm.pbf"


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` from the repository root; what its last line of output says, as JSON."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def _with_dbname(url: str, dbname: str) -> str:
    base, _, rest = url.rpartition("/")
    query = ""
    if "?" in rest:
        query = "?" + rest.split("?", 1)[1]
    return f"{base}/{dbname}{query}"


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A URL to the maintenance database of the server the tests may create databases in.

    The embedded cluster is stopped at the end when the session started it (a running one,
    e.g. ``make demo``'s, is left running)."""
    external = os.environ.get("FONDPLAN_TEST_DATABASE_URL") or os.environ.get(
        "FONDPLAN_DATABASE_URL"
    )
    if external:
        yield _with_dbname(external, "postgres")
        return
    cluster = EmbeddedCluster(Path(os.environ.get("FONDPLAN_DATA_DIR", ROOT / "var")))
    was_running = cluster.is_running()
    cluster.start()
    yield cluster.url("postgres")
    if not was_running:
        cluster.stop()


@pytest.fixture(scope="session")
def make_database(admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of throwaway PostGIS databases, all dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"fondplan_test_{uuid.uuid4().hex[:12]}"
        ensure_database(admin_url, name)
        created.append(name)
        return _with_dbname(admin_url, name)

    yield make
    from osmimport.settings import ImportSettings
    from routing.store import cache_root

    for name in created:
        drop_database(admin_url, name)
        # The routing file cache the test servers filled for it.
        shutil.rmtree(
            cache_root(ImportSettings().database.data_dir, _with_dbname(admin_url, name)),
            ignore_errors=True,
        )


@pytest.fixture(scope="session")
def liechtenstein_url(make_database: Callable[[], str]) -> str:
    """A database with the whole Liechtenstein 2021 extract imported with its routing data
    (built once a session)."""
    from osmimport.importer import run_import
    from routing.build import build_before_swap

    url = make_database()
    run_import(url, [LIECHTENSTEIN], before_swap=[build_before_swap])
    return url

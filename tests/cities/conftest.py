from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="session")
def mulhouse_url(make_database: Callable[[], str]) -> str:
    """A database with both Mulhouse extracts (partial commune boundaries)."""
    from osmimport.importer import run_import

    url = make_database()
    run_import(url, [SAMPLE / "mulhouse-centre.osm.pbf", SAMPLE / "mulhouse-sud-ouest.osm.pbf"])
    return url

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cities.render import MapRenderer

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="session")
def mulhouse_url(make_database: Callable[[], str]) -> str:
    """A database with both Mulhouse extracts (partial commune boundaries)."""
    from osmimport.importer import run_import

    url = make_database()
    run_import(url, [SAMPLE / "mulhouse-centre.osm.pbf", SAMPLE / "mulhouse-sud-ouest.osm.pbf"])
    return url


@pytest.fixture(scope="session")
def renderer_for() -> Iterator[Callable[[str], MapRenderer]]:
    """MapLibre Native renderers (one render process per database), stopped at the end."""
    from tileserver.townplan_renderer import MapLibreMapRenderer

    made: dict[str, MapLibreMapRenderer] = {}

    def get(url: str) -> MapRenderer:
        if url not in made:
            made[url] = MapLibreMapRenderer.for_database(url)
        return made[url]

    yield get
    for renderer in made.values():
        renderer.close()

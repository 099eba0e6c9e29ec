from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from cities.communes import find_commune
from cities.paper import Layout, Orientation
from cities.render import MapRenderer
from cities.townplan import Plan, PlanOptions, commune_area, make_plan

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


@pytest.fixture(scope="session")
def vaduz_a3(
    liechtenstein_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    renderer_for: Callable[[str], MapRenderer],
) -> tuple[Path, Plan]:
    """Vaduz on A3 landscape, index beside the map, at 100 dpi: made once, read by many tests."""
    plan = plan_of(
        liechtenstein_url, "Vaduz", renderer_for(liechtenstein_url), paper="A3",
        orientation=Orientation.LANDSCAPE, layout=Layout.INDEX_SIDE, dpi=100,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("vaduz") / "vaduz.pdf"
    path.write_bytes(plan.documents[0])
    return path, plan


def plan_of(url: str, name: str, renderer: MapRenderer, **options: object) -> Plan:
    """The plan of commune ``name`` with ``options`` (those of PlanOptions)."""
    conn = psycopg2.connect(url)
    try:
        commune = find_commune(conn, name=name)
    finally:
        conn.close()
    return make_plan(
        url,
        commune_area(url, commune),
        PlanOptions(**options),  # type: ignore[arg-type]
        renderer,
    )

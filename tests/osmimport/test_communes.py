"""Communes: boundaries tagged boundary or multipolygon, admin levels per country, --admin-level."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from cities.communes import find_commune, list_communes
from osmimport.importer import run_import
from osmimport.settings import ImportSettings
from tests.osmimport.opl import Opl

ROOT = Path(__file__).resolve().parents[2]


def boundaries(path: Path) -> Path:
    """Administrative areas of Franconia, Austria and Alsace, as squares."""
    opl = Opl()
    areas: list[tuple[int, float, float, float, dict[str, str]]] = [
        # A kreisfreie Stadt: level 6, no level 8 inside.
        (1, 11.55, 49.93, 0.04, {"name": "Bayreuth", "de:place": "city",
                                 "de:regionalschluessel": "09462"}),
        # A Landkreis whose Gemeinden are outside the extract: a county, never a commune.
        (2, 11.70, 49.80, 0.10, {"name": "Landkreis Kulmbach", "de:place": "county",
                                 "de:regionalschluessel": "09477"}),
        # A Kreis with a Gemeinde inside it.
        (3, 11.65, 49.90, 0.10, {"name": "Kreis Ohne Ort", "de:regionalschluessel": "09472"}),
        (4, 11.66, 49.91, 0.02, {"name": "Bindlach", "de:regionalschluessel": "094721"}),
        # A French département: France's communes are level 8 only.
        (5, 7.20, 47.60, 0.10, {"name": "Haut-Rhin", "ISO3166-2": "FR-68"}),
    ]  # fmt: skip
    levels = {1: "6", 2: "6", 3: "6", 4: "8", 5: "6"}
    for rel_id, x, y, size, tags in areas:
        way = opl.square(100 + rel_id, x, y, size)
        opl.boundary(
            rel_id,
            [way],
            levels[rel_id],
            **tags,
        )
    # Krems: an Austrian Statutarstadt tagged type=multipolygon.
    way = opl.square(106, 15.60, 48.40, 0.05)
    opl.boundary(
        6,
        [way],
        "8",
        type="multipolygon",
        name="Krems an der Donau",
        **{"ref:at:gkz": "30101"},
    )
    return opl.write(path)


@pytest.fixture(scope="module")
def communes_url(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[], str]) -> str:
    url = make_database()
    path = boundaries(tmp_path_factory.mktemp("communes") / "communes.opl")
    run_import(url, [path], allow_empty=True)
    return url


def names(url: str, level: int | None = None) -> list[str]:
    conn = psycopg2.connect(url)
    try:
        return [c.name for c in list_communes(conn, admin_level=level)]
    finally:
        conn.close()


def test_communes_by_type_and_level(communes_url: str) -> None:
    assert names(communes_url) == ["Bayreuth", "Bindlach", "Krems an der Donau"]
    assert names(communes_url, 6) == [
        "Bayreuth", "Haut-Rhin", "Kreis Ohne Ort", "Landkreis Kulmbach"
    ]  # fmt: skip
    assert names(communes_url, 9) == []
    conn = psycopg2.connect(communes_url)
    try:
        bayreuth = find_commune(conn, name="bayreuth")
        assert (bayreuth.admin_level, bayreuth.country, bayreuth.complete) == (6, "DE", True)
        krems = find_commune(conn, name="Krems an der Donau")
        assert (krems.admin_level, krems.country) == (8, "AT")
        kreis = find_commune(conn, name="Kreis Ohne Ort", admin_level=6)
        assert kreis.admin_level == 6
    finally:
        conn.close()


def test_communes_cli_admin_level(communes_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FONDPLAN_DATABASE_URL": communes_url}
    command = [sys.executable, "-m", "cities.cli", "communes"]
    listed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [
        "Bayreuth", "Bindlach", "Krems an der Donau"
    ]  # fmt: skip
    level6 = subprocess.run(
        [*command, "--admin-level", "6", "--search", "kreis"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [line.split("\t")[0] for line in level6.stdout.splitlines()] == [
        "Kreis Ohne Ort", "Landkreis Kulmbach"
    ]  # fmt: skip


def test_commune_levels_are_settings(
    tmp_path: Path, make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Here French départements count where no commune lies inside them.
    monkeypatch.setenv("FONDPLAN_COMMUNE_LEVELS", '{"FR": [8, 6], "DE": [8]}')
    url = make_database()
    run_import(
        url, [boundaries(tmp_path / "c.opl")], allow_empty=True, communes=ImportSettings().communes
    )
    assert names(url) == ["Bindlach", "Haut-Rhin", "Krems an der Donau"]

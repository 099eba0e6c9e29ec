"""The facilities index: town hall, schools, health, worship, sport, culture, transport."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.collation import sort_key
from cities.db import query
from cities.grid import Cell, Grid
from osmimport import schema


@dataclass(frozen=True)
class Category:
    """A facilities category: its title, the icon drawn on the map, and what it gathers."""

    key: str
    title: str
    #: One character drawn in the icon disc (DejaVu Sans has them all).
    symbol: str
    #: Icon colour (r, g, b) in 0..1.
    colour: tuple[float, float, float]
    #: (source key, value) → label used when the feature has no name.
    members: dict[tuple[str, str], str]
    #: Keep only named features of these (source key, value) pairs (e.g. sports pitches).
    named_only: frozenset[tuple[str, str]] = frozenset()


CATEGORIES: tuple[Category, ...] = (
    Category("mairie", "Mairie", "M", (0.55, 0.10, 0.10), {("amenity", "townhall"): "Mairie"}),
    Category(
        "services",
        "Services publics",
        "S",
        (0.35, 0.25, 0.55),
        {
            ("amenity", "post_office"): "Poste",
            ("amenity", "police"): "Police",
            ("amenity", "fire_station"): "Pompiers",
            ("amenity", "courthouse"): "Tribunal",
            ("amenity", "public_building"): "Bâtiment public",
        },
    ),
    Category(
        "ecoles",
        "Écoles",
        "É",
        (0.85, 0.45, 0.05),
        {
            ("amenity", "school"): "École",
            ("amenity", "kindergarten"): "École maternelle",
            ("amenity", "college"): "Lycée, collège",
            ("amenity", "university"): "Université",
        },
    ),
    Category(
        "sante",
        "Santé et pharmacies",
        "+",
        (0.10, 0.55, 0.20),
        {
            ("amenity", "pharmacy"): "Pharmacie",
            ("amenity", "hospital"): "Hôpital",
            ("amenity", "clinic"): "Clinique",
            ("amenity", "doctors"): "Médecin",
            ("amenity", "dentist"): "Dentiste",
            ("amenity", "nursing_home"): "Maison de retraite",
        },
    ),
    Category(
        "culte",
        "Culte",
        "†",
        (0.40, 0.30, 0.20),
        {("amenity", "place_of_worship"): "Lieu de culte"},
    ),
    Category(
        "sport",
        "Sport",
        "◆",
        (0.05, 0.45, 0.65),
        {
            ("leisure", "sports_centre"): "Centre sportif",
            ("leisure", "stadium"): "Stade",
            ("leisure", "swimming_pool"): "Piscine",
            ("leisure", "ice_rink"): "Patinoire",
            ("leisure", "golf_course"): "Golf",
            ("leisure", "water_park"): "Parc aquatique",
            ("leisure", "pitch"): "Terrain de sport",
        },
        named_only=frozenset({("leisure", "pitch"), ("leisure", "swimming_pool")}),
    ),
    Category(
        "culture",
        "Culture",
        "C",
        (0.65, 0.15, 0.50),
        {
            ("amenity", "library"): "Bibliothèque",
            ("amenity", "theatre"): "Théâtre",
            ("amenity", "cinema"): "Cinéma",
            ("amenity", "arts_centre"): "Centre culturel",
            ("amenity", "community_centre"): "Salle communale",
            ("tourism", "museum"): "Musée",
        },
    ),
    Category(
        "transports",
        "Transports",
        "T",
        (0.15, 0.25, 0.60),
        {
            ("public_transport", "station"): "Gare",
            ("public_transport", "halt"): "Halte ferroviaire",
            ("public_transport", "bus_station"): "Gare routière",
            ("public_transport", "aerialway_station"): "Remontée mécanique",
            ("public_transport", "ferry_terminal"): "Embarcadère",
        },
    ),
)


@dataclass(frozen=True)
class Facility:
    """One facility of the index; same-label facilities of a category share one entry."""

    category: Category
    label: str
    cells: tuple[Cell, ...]
    points: tuple[tuple[float, float], ...]

    @property
    def cells_text(self) -> str:
        """ "A1, B2" """
        return ", ".join(cell.label for cell in self.cells)


def facilities_index(
    conn: psycopg2.extensions.connection, area: BaseGeometry, grid: Grid
) -> list[tuple[Category, list[Facility]]]:
    """Facilities of ``area`` grouped by category (in CATEGORIES order, empty ones left out)."""
    wanted: dict[str, list[str]] = defaultdict(list)
    owner: dict[tuple[str, str], Category] = {}
    for category in CATEGORIES:
        for key, value in category.members:
            wanted[key].append(value)
            owner[(key, value)] = category
    with conn.cursor() as cur:
        cur.execute(
            query(
                "facilities.sql",
                pois=schema.LAYER_BY_NAME["pois"].table,
                public_transport=schema.LAYER_BY_NAME["public_transport"].table,
            ),
            {
                "area": psycopg2.Binary(shapely.to_wkb(area)),
                **{key: wanted.get(key, []) for key in ("amenity", "leisure", "tourism")},
                "public_transport": wanted.get("public_transport", []),
            },
        )
        rows = cur.fetchall()
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for key, value, name, x, y in rows:
        category = owner[(key, value)]
        if not name and (key, value) in category.named_only:
            continue
        label = (name or "").strip() or category.members[(key, value)]
        grouped[(category.key, label)].append((x, y))
    result: list[tuple[Category, list[Facility]]] = []
    for category in CATEGORIES:
        entries: list[Facility] = []
        for (key, label), points in grouped.items():
            if key != category.key:
                continue
            cells = sorted(
                {cell for x, y in points if (cell := grid.cell_at(x, y)) is not None},
                key=lambda c: (c.col, c.row),
            )
            if cells:
                entries.append(Facility(category, label, tuple(cells), tuple(points)))
        entries.sort(key=lambda f: sort_key(f.label))
        if entries:
            result.append((category, entries))
    return result

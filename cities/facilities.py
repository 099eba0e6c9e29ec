"""The facilities index: town hall, schools, health, worship, sport, culture, transport."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.collation import sort_key
from cities.db import layer_query
from cities.grid import Cell, Grid


@dataclass(frozen=True)
class Category:
    """A facilities category: its title, its icon (styles/icons), and what it gathers."""

    key: str
    title: str
    #: Icon of the category heading and the legend (a name of styles/icons/*.svg).
    icon: str
    #: (source key, value) → label used when the feature has no name.
    members: dict[tuple[str, str], str]
    #: Keep only named features of these (source key, value) pairs (e.g. sports pitches).
    named_only: frozenset[tuple[str, str]] = frozenset()


CATEGORIES: tuple[Category, ...] = (
    Category("mairie", "Mairie", "townhall", {("amenity", "townhall"): "Mairie"}),
    Category(
        "services",
        "Services publics",
        "police",
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
        "school",
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
        "pharmacy",
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
        "worship",
        {("amenity", "place_of_worship"): "Lieu de culte"},
    ),
    Category(
        "sport",
        "Sport",
        "sport",
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
        "theatre",
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
        "rail",
        {
            ("public_transport", "station"): "Gare",
            ("public_transport", "halt"): "Halte ferroviaire",
            ("public_transport", "bus_station"): "Gare routière",
            ("public_transport", "aerialway_station"): "Remontée mécanique",
            ("public_transport", "ferry_terminal"): "Embarcadère",
        },
    ),
)


#: Icon of each kind of facility on the map and in the index; kinds not listed use their
#: category's icon.
MEMBER_ICONS: dict[tuple[str, str], str] = {
    ("amenity", "post_office"): "post",
    ("amenity", "police"): "police",
    ("amenity", "fire_station"): "fire_station",
    ("amenity", "courthouse"): "townhall",
    ("amenity", "public_building"): "townhall",
    ("amenity", "college"): "college",
    ("amenity", "university"): "college",
    ("amenity", "hospital"): "hospital",
    ("amenity", "clinic"): "hospital",
    ("amenity", "doctors"): "doctor",
    ("amenity", "dentist"): "dentist",
    ("leisure", "swimming_pool"): "swimming",
    ("leisure", "water_park"): "swimming",
    ("amenity", "library"): "library",
    ("amenity", "cinema"): "cinema",
    ("tourism", "museum"): "museum",
    ("public_transport", "bus_station"): "bus",
    ("public_transport", "aerialway_station"): "aerialway",
    ("public_transport", "ferry_terminal"): "ferry",
}


def member_icon(category: Category, key: str, value: str) -> str:
    """The icon of a facility of kind ``key=value`` in ``category``."""
    return MEMBER_ICONS.get((key, value), category.icon)


@dataclass(frozen=True)
class Facility:
    """One facility of the index; same-label facilities of a category share one entry."""

    category: Category
    label: str
    cells: tuple[Cell, ...]
    points: tuple[tuple[float, float], ...]
    #: The icon of each point (same order as ``points``).
    icons: tuple[str, ...] = ()

    @property
    def icon(self) -> str:
        """The icon shown beside the entry in the index."""
        return self.icons[0] if self.icons else self.category.icon


def facilities_index(
    conn: psycopg2.extensions.connection,
    area: BaseGeometry,
    grid: Grid,
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
            layer_query("facilities.sql", pois="pois", public_transport="public_transport"),
            {
                "area": psycopg2.Binary(shapely.to_wkb(area)),
                **{key: wanted.get(key, []) for key in ("amenity", "leisure", "tourism")},
                "public_transport": wanted.get("public_transport", []),
            },
        )
        rows = cur.fetchall()
    grouped: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)
    for key, value, name, x, y in rows:
        category = owner[(key, value)]
        if not name and (key, value) in category.named_only:
            continue
        label = (name or "").strip() or category.members[(key, value)]
        grouped[(category.key, label)].append((x, y, member_icon(category, key, value)))
    result: list[tuple[Category, list[Facility]]] = []
    for category in CATEGORIES:
        entries: list[Facility] = []
        for (key, label), points in grouped.items():
            if key != category.key:
                continue
            cells = sorted(
                {cell for x, y, _ in points if (cell := grid.cell_at(x, y)) is not None},
                key=lambda c: (c.col, c.row),
            )
            if cells:
                entries.append(
                    Facility(
                        category,
                        label,
                        tuple(cells),
                        tuple((x, y) for x, y, _ in points),
                        tuple(icon for _, _, icon in points),
                    )
                )
        entries.sort(key=lambda f: sort_key(f.label))
        if entries:
            result.append((category, entries))
    return result

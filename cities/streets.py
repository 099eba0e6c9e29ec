"""The street index: every named street of the area, once per distinct street, with its cells."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.collation import fold, sort_key
from cities.db import layer_query, query, table_exists
from cities.grid import Cell, Grid
from osmimport import schema

#: Street kinds that are not streets of a town plan index (railways, airfields).
EXCLUDED_KINDS = [
    "rail",
    "narrow_gauge",
    "tram",
    "light_rail",
    "funicular",
    "subway",
    "monorail",
    "runway",
    "taxiway",
]

#: Names of service ways that are car parks, not streets (case ignored).
CAR_PARK = r"(^|\m)(parking|parkhaus|parkplatz|tiefgarage|parkgarage|p ?\+ ?r)(\M|$)"

#: Pieces of a same-name street further apart than this (ground metres) are distinct streets.
SAME_STREET_GAP_M = 300.0


@dataclass(frozen=True)
class StreetEntry:
    """One line of the street index."""

    name: str
    qualifier: str
    cells: tuple[Cell, ...]
    geometry: BaseGeometry

    @property
    def display(self) -> str:
        """The name as printed, with its locality when another street has the same name."""
        return f"{self.name} ({self.qualifier})" if self.qualifier else self.name

    @property
    def cells_text(self) -> str:
        """ "A1, A2, B3" """
        return ", ".join(cell.label for cell in self.cells)


def _clusters(parts: list[BaseGeometry], gap: float) -> list[list[int]]:
    """Groups of parts connected through gaps smaller than ``gap`` (map units)."""
    parent = list(range(len(parts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = shapely.STRtree(parts)
    left, right = tree.query(parts, predicate="dwithin", distance=gap)
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(parts)):
        groups[root(i)].append(i)
    return list(groups.values())


@dataclass(frozen=True)
class Place:
    """A named locality: its name, its kind (town, village, suburb, hamlet…), its point."""

    name: str
    kind: str
    x: float
    y: float


def read_places(conn: psycopg2.extensions.connection, area: BaseGeometry) -> list[Place]:
    """The named localities in ``area`` (EPSG:3857), the most populous first."""
    places = schema.LAYER_BY_NAME["place_labels"].table
    if not table_exists(conn, places):
        return []
    with conn.cursor() as cur:
        cur.execute(
            query("places.sql", place_labels=places),
            {"area": psycopg2.Binary(shapely.to_wkb(area))},
        )
        return [Place(*row) for row in cur.fetchall()]


def street_index(
    conn: psycopg2.extensions.connection,
    area: BaseGeometry,
    grid: Grid,
    *,
    latitude: float,
) -> list[StreetEntry]:
    """The sorted street index of ``area`` (EPSG:3857) on ``grid``."""
    area_wkb = shapely.to_wkb(area)
    with conn.cursor() as cur:
        cur.execute(
            layer_query(
                "street_names.sql",
                street_labels="street_labels",
                streets="streets",
                street_polygons="street_polygons",
                street_polygon_labels="streets_polygons_labels",
            ),
            {
                "area": psycopg2.Binary(area_wkb),
                "excluded_kinds": EXCLUDED_KINDS,
                "car_park": CAR_PARK,
            },
        )
        rows = cur.fetchall()
    by_name: dict[str, list[tuple[str, BaseGeometry]]] = defaultdict(list)
    for name, wkb in rows:
        geometry = shapely.from_wkb(bytes(wkb))
        if geometry.is_empty:
            continue
        by_name[fold(name)].append((name.strip(), geometry))
    gap = SAME_STREET_GAP_M / max(math.cos(math.radians(latitude)), 0.1)
    places = read_places(conn, area)
    entries: list[StreetEntry] = []
    for pieces in by_name.values():
        spelling = Counter(name for name, _ in pieces).most_common(1)[0][0]
        parts = [geometry for _, geometry in pieces]
        groups = _clusters(parts, gap) if len(parts) > 1 else [[0]]
        merged = [shapely.union_all([parts[i] for i in group]) for group in groups]
        qualifiers = _qualifiers(merged, places) if len(merged) > 1 else [""] * len(merged)
        for geometry, qualifier in zip(merged, qualifiers, strict=True):
            cells = tuple(grid.cells_crossed(geometry))
            if cells:
                entries.append(StreetEntry(spelling, qualifier, cells, geometry))
    entries.sort(key=lambda e: (sort_key(e.name), sort_key(e.qualifier), e.cells_text))
    return entries


def _qualifiers(geometries: list[BaseGeometry], places: list[Place]) -> list[str]:
    """A distinguishing label per same-name street: its nearest locality, else its first cell."""
    labels: list[str] = []
    for geometry in geometries:
        if places:
            nearest = min(places, key=lambda p: geometry.distance(shapely.Point(p.x, p.y)))
            labels.append(nearest.name)
        else:
            labels.append("")
    if len(set(labels)) == len(labels) and all(labels):
        return labels
    counts = Counter(labels)
    numbered: list[str] = []
    seen: Counter[str] = Counter()
    for label in labels:
        if counts[label] > 1 or not label:
            seen[label] += 1
            numbered.append(f"{label} {seen[label]}".strip() if label else f"{seen[label]}")
        else:
            numbered.append(label)
    return numbered

"""Communes in several pieces: the main part the plan frames, and the enclaves shown in an inset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.db import query, table_exists
from osmimport import schema

BBox = tuple[float, float, float, float]

#: Parts of a commune closer than this (ground metres) to its largest part belong to the main
#: map; those further away are enclaves.
NEAR_M = 500.0
#: Enclaves are set apart only when leaving them out makes the main map at least this much
#: larger; otherwise the whole commune is drawn at one scale.
MIN_ZOOM_GAIN = 1.3
#: A detached part is named after a locality at most this far (ground metres) from it.
NAME_WITHIN_M = 1500.0


@dataclass(frozen=True)
class Enclave:
    """A detached part of the commune, off the main map (EPSG:3857)."""

    name: str
    geometry: BaseGeometry


def enclave_mark(name: str) -> str:
    """How the index points to an enclave instead of grid cells: "enclave Malbun"."""
    return f"enclave {name}"


def polygons(geometry: BaseGeometry) -> list[BaseGeometry]:
    """The polygons of a (multi)polygon, largest first."""
    parts = [p for p in getattr(geometry, "geoms", [geometry]) if not p.is_empty]
    return sorted(parts, key=lambda p: -p.area)


def main_part(geometry: BaseGeometry, latitude: float) -> BaseGeometry:
    """The largest polygon with the parts near it (within NEAR_M): what the main map frames."""
    parts = polygons(geometry)
    if len(parts) <= 1:
        return geometry
    near = NEAR_M / max(math.cos(math.radians(latitude)), 0.1)
    main = parts[0]
    rest = parts[1:]
    changed = True
    while changed:
        changed = False
        for part in list(rest):
            if part.distance(main) <= near:
                main = main.union(part)
                rest.remove(part)
                changed = True
    return main


def zoom_gain(whole: BBox, main: BBox, frame_w: float, frame_h: float) -> float:
    """How many times larger the main part prints than the whole area in a frame of that shape."""

    def units_per_mm(b: BBox) -> float:
        return max((b[2] - b[0]) / frame_w, (b[3] - b[1]) / frame_h, 1e-9)

    return units_per_mm(whole) / units_per_mm(main)


def detached_parts(geometry: BaseGeometry, frame_bbox: BBox, latitude: float) -> list[BaseGeometry]:
    """Parts of ``geometry`` not wholly inside ``frame_bbox``, with parts near each other merged."""
    frame = shapely.box(*frame_bbox)
    outside = [p for p in polygons(geometry) if not frame.contains(p)]
    if not outside:
        return []
    near = NEAR_M / max(math.cos(math.radians(latitude)), 0.1)
    groups: list[BaseGeometry] = []
    for part in outside:
        for i, group in enumerate(groups):
            if group.distance(part) <= near:
                groups[i] = group.union(part)
                break
        else:
            groups.append(part)
    return sorted(groups, key=lambda g: -g.area)


def name_enclaves(
    conn: psycopg2.extensions.connection, parts: Sequence[BaseGeometry], latitude: float
) -> list[Enclave]:
    """Each part named after the locality in or next to it; unnamed ones numbered 1, 2, …"""
    places = schema.LAYER_BY_NAME["place_labels"].table
    within = NAME_WITHIN_M / max(math.cos(math.radians(latitude)), 0.1)
    names: list[str | None] = []
    for part in parts:
        name = None
        if table_exists(conn, places):
            with conn.cursor() as cur:
                cur.execute(
                    query("enclave_place.sql", place_labels=places),
                    {"part": psycopg2.Binary(shapely.to_wkb(part)), "within": within},
                )
                row = cur.fetchone()
            name = row[0] if row else None
        names.append(name)
    enclaves: list[Enclave] = []
    used: set[str] = set()
    number = 0
    for part, name in zip(parts, names, strict=True):
        if name is None or name in used:
            number += 1
            label = f"{name} {number}" if name else str(number)
        else:
            label = name
        used.add(label)
        enclaves.append(Enclave(label, part))
    return enclaves


def enclaves_of(geometry: BaseGeometry, enclaves: Sequence[Enclave]) -> tuple[str, ...]:
    """Names of the enclaves ``geometry`` touches."""
    return tuple(e.name for e in enclaves if geometry.intersects(e.geometry))

"""Named water of a plan's extent: rivers and canals named along their lines, lakes inside them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.db import query, table_exists
from osmimport import schema

#: Water areas named inside their outline; rivers' areas are named along their lines instead.
AREA_KINDS = ["water", "reservoir", "basin", "dock"]
#: Lines named first: rivers before canals before streams and ditches.
LINE_ORDER = {"river": 0, "canal": 1, "stream": 2, "ditch": 3}


@dataclass(frozen=True)
class WaterName:
    """A named river (its lines, merged) or lake (its area), in EPSG:3857."""

    name: str
    kind: str
    geometry: BaseGeometry
    area: bool


def read_water(conn: psycopg2.extensions.connection, extent: BaseGeometry) -> list[WaterName]:
    """The named water of ``extent``: lines by importance then length, then areas by size."""
    tables = {
        name: schema.LAYER_BY_NAME[name].table
        for name in ("water_lines_labels", "water_polygons_labels", "water_polygons")
    }
    if not all(table_exists(conn, table) for table in tables.values()):
        return []
    with conn.cursor() as cur:
        cur.execute(
            query("water_names.sql", **tables),
            {"extent": psycopg2.Binary(shapely.to_wkb(extent)), "area_kinds": AREA_KINDS},
        )
        rows = cur.fetchall()
    lines: dict[tuple[str, str], list[BaseGeometry]] = defaultdict(list)
    areas: list[WaterName] = []
    for shape, name, kind, wkb in rows:
        geometry = shapely.from_wkb(bytes(wkb))
        if geometry.is_empty:
            continue
        if shape == "area":
            areas.append(WaterName(name.strip(), kind, geometry, True))
        else:
            lines[(name.strip(), kind)].append(geometry)
    merged = []
    for (name, kind), parts in lines.items():
        # Clipping can leave points where a line touches the extent: only lines are named.
        pieces = [p for g in parts for p in shapely.get_parts(g) if p.geom_type == "LineString"]
        if pieces:
            line = shapely.line_merge(shapely.union_all(pieces))
            merged.append(WaterName(name, kind, line, False))
    merged.sort(key=lambda w: (LINE_ORDER.get(w.kind, 9), -w.geometry.length))
    areas.sort(key=lambda w: -w.geometry.area)
    return merged + areas

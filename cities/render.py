"""Map bodies: the renderer protocol plans are drawn with, and a cairo renderer reading PostGIS."""

from __future__ import annotations

import io
import math
from typing import Protocol

import cairo
import numpy as np
import psycopg2
import shapely
from shapely.geometry.base import BaseGeometry

from cities.db import query, table_exists
from cities.style import StyleLayer, builtin_style, drawable_layers
from osmimport import schema
from osmimport.database import connect

BBox = tuple[float, float, float, float]

#: Font of every text of a plan (Debian fonts-dejavu-core).
FONT = "DejaVu Sans"

_LABELLED_KINDS = [
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "pedestrian",
    "service",
]


class MapRenderer(Protocol):
    """Draws the map of ``bbox_3857`` with ``style`` as a PNG of width_px × height_px.

    ``pixel_ratio`` is the device pixel ratio (print DPI / 96): line widths and labels are
    multiplied by it, so the map reads the same at any DPI.
    """

    def __call__(
        self,
        *,
        style: str,
        bbox_3857: BBox,
        width_px: int,
        height_px: int,
        pixel_ratio: float,
    ) -> bytes:
        """The PNG bytes of the map."""
        ...


class CairoMapRenderer:
    """Draws water, land, streets, buildings and street names straight from PostGIS with cairo.

    It reads the colours of the built-in style (cities/fallback_style.json) whatever ``style``
    is asked for; MapLibre Native renderers draw the named style itself.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.layers = drawable_layers(builtin_style())

    def __call__(
        self,
        *,
        style: str,
        bbox_3857: BBox,
        width_px: int,
        height_px: int,
        pixel_ratio: float,
    ) -> bytes:
        """The PNG bytes of the map."""
        surface = cairo.ImageSurface(cairo.FORMAT_RGB24, width_px, height_px)
        ctx = cairo.Context(surface)
        ctx.set_source_rgb(0.973, 0.965, 0.949)
        ctx.paint()
        xmin, ymin, xmax, ymax = bbox_3857
        scale = width_px / (xmax - xmin)
        params = {
            "xmin": xmin,
            "ymin": ymin,
            "xmax": xmax,
            "ymax": ymax,
            "tolerance": 0.5 / scale,
        }

        def to_px(coords: np.ndarray) -> np.ndarray:
            out = np.empty_like(coords)
            out[:, 0] = (coords[:, 0] - xmin) * scale
            out[:, 1] = (ymax - coords[:, 1]) * scale
            return out

        conn = connect(self.database_url)
        try:
            geoms = {id(layer): self._fetch(conn, layer, params) for layer in self.layers}
            casing_layers = [
                layer
                for layer in self.layers
                if layer.type == "line" and layer.source_layer == "streets" and layer.width >= 3
            ]
            for layer in self.layers:
                if layer in casing_layers and layer is casing_layers[0]:
                    for casing in casing_layers:
                        self._stroke(
                            ctx, geoms[id(casing)], to_px, (0.45, 0.42, 0.40),
                            (casing.width + 1.2) * pixel_ratio, False,
                        )  # fmt: skip
                if layer.type == "fill":
                    self._fill(ctx, geoms[id(layer)], to_px, layer.colour)
                else:
                    self._stroke(
                        ctx, geoms[id(layer)], to_px, layer.colour,
                        layer.width * pixel_ratio, layer.source_layer == "streets"
                        and layer.width < 1.0,
                    )  # fmt: skip
            self._labels(conn, ctx, params, to_px, pixel_ratio, width_px, height_px)
        finally:
            conn.close()
        buffer = io.BytesIO()
        surface.write_to_png(buffer)
        return buffer.getvalue()

    @staticmethod
    def _fetch(
        conn: psycopg2.extensions.connection, layer: StyleLayer, params: dict[str, float]
    ) -> list[BaseGeometry]:
        if layer.source_layer not in schema.LAYER_BY_NAME or not table_exists(
            conn, layer.source_layer
        ):
            return []
        kinds = sorted(layer.values - {"in", "get", "kind", "literal", "==", "match"})
        name = "map_features_kind.sql" if kinds else "map_features.sql"
        with conn.cursor() as cur:
            cur.execute(query(name, layer=layer.source_layer), {**params, "kinds": kinds})
            return [shapely.from_wkb(bytes(row[0])) for row in cur.fetchall() if row[0]]

    @staticmethod
    def _path(
        ctx: cairo.Context[cairo.ImageSurface], geometry: BaseGeometry, to_px: object
    ) -> None:
        convert = to_px  # np.ndarray -> np.ndarray
        for part in getattr(geometry, "geoms", [geometry]):
            rings = [part.exterior, *part.interiors] if part.geom_type == "Polygon" else [part]
            for ring in rings:
                points = convert(shapely.get_coordinates(ring))  # type: ignore[operator]
                if len(points) < 2:
                    continue
                ctx.move_to(points[0, 0], points[0, 1])
                for x, y in points[1:]:
                    ctx.line_to(x, y)
                if part.geom_type == "Polygon":
                    ctx.close_path()

    def _fill(
        self,
        ctx: cairo.Context[cairo.ImageSurface],
        geometries: list[BaseGeometry],
        to_px: object,
        colour: tuple[float, float, float],
    ) -> None:
        ctx.set_fill_rule(cairo.FILL_RULE_EVEN_ODD)
        for geometry in geometries:
            if geometry.geom_type in ("Polygon", "MultiPolygon"):
                self._path(ctx, geometry, to_px)
        ctx.set_source_rgb(*colour)
        ctx.fill()

    def _stroke(
        self,
        ctx: cairo.Context[cairo.ImageSurface],
        geometries: list[BaseGeometry],
        to_px: object,
        colour: tuple[float, float, float],
        width: float,
        dashed: bool,
    ) -> None:
        for geometry in geometries:
            self._path(ctx, geometry, to_px)
        ctx.set_source_rgb(*colour)
        ctx.set_line_width(width)
        ctx.set_line_cap(cairo.LINE_CAP_ROUND)
        ctx.set_line_join(cairo.LINE_JOIN_ROUND)
        ctx.set_dash([width * 2, width * 1.5] if dashed else [])
        ctx.stroke()
        ctx.set_dash([])

    def _labels(
        self,
        conn: psycopg2.extensions.connection,
        ctx: cairo.Context[cairo.ImageSurface],
        params: dict[str, float],
        to_px: object,
        pixel_ratio: float,
        width_px: int,
        height_px: int,
    ) -> None:
        """Street names along the longest straight piece of each street, without overlaps."""
        labels = schema.LAYER_BY_NAME["street_labels"].table
        if not table_exists(conn, labels):
            return
        with conn.cursor() as cur:
            cur.execute(
                query("map_labels.sql", street_labels=labels),
                {**params, "kinds": _LABELLED_KINDS},
            )
            rows = cur.fetchall()
        ctx.select_font_face(FONT, cairo.FONT_SLANT_NORMAL, cairo.FONT_WEIGHT_NORMAL)
        size = 7.0 * pixel_ratio
        ctx.set_font_size(size)
        placed: list[tuple[float, float, float, float]] = []
        seen: set[str] = set()
        for name, wkb in rows:
            points = to_px(shapely.get_coordinates(shapely.from_wkb(bytes(wkb))))  # type: ignore[operator]
            if len(points) < 2:
                continue
            deltas = np.diff(points, axis=0)
            lengths = np.hypot(deltas[:, 0], deltas[:, 1])
            best = int(np.argmax(lengths))
            text_width = ctx.text_extents(name).x_advance
            if lengths[best] < text_width * 1.1:
                continue
            (x0, y0), (dx, dy) = points[best], deltas[best]
            angle = math.atan2(dy, dx)
            if angle > math.pi / 2 or angle < -math.pi / 2:
                angle += math.pi
            cx, cy = x0 + dx / 2, y0 + dy / 2
            half = text_width / 2 + size * 0.5
            ex = abs(math.cos(angle)) * half + abs(math.sin(angle)) * size
            ey = abs(math.sin(angle)) * half + abs(math.cos(angle)) * size
            box = (cx - ex, cy - ey, cx + ex, cy + ey)
            if box[0] < 0 or box[1] < 0 or box[2] > width_px or box[3] > height_px:
                continue
            if any(
                not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3])
                for b in placed
            ):
                continue
            if name in seen and len(placed) > 2000:
                continue
            placed.append(box)
            seen.add(name)
            ctx.save()
            ctx.translate(cx, cy)
            ctx.rotate(angle)
            ctx.move_to(-text_width / 2, size * 0.35)
            ctx.text_path(name)
            ctx.set_source_rgba(1, 1, 1, 0.9)
            ctx.set_line_width(size * 0.3)
            ctx.stroke_preserve()
            ctx.set_source_rgb(0.15, 0.15, 0.15)
            ctx.fill()
            ctx.restore()

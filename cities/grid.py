"""The reference grid: lettered columns, numbered rows, and which cells a geometry crosses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import shapely
from shapely.geometry.base import BaseGeometry

#: Target cell size on paper (mm); the grid rounds to whole cells over the map frame.
TARGET_CELL_MM = 45.0


def column_label(index: int) -> str:
    """A, B, …, Z, AA, AB, … for column ``index`` (0-based)."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


@dataclass(frozen=True)
class Cell:
    """One grid cell, identified by its column and row (both 0-based)."""

    col: int
    row: int

    @property
    def label(self) -> str:
        """The cell's reference as printed: "B3"."""
        return f"{column_label(self.col)}{self.row + 1}"


@dataclass(frozen=True)
class Grid:
    """A grid over ``bbox`` (EPSG:3857) with ``cols`` × ``rows`` equal cells; row 1 at the top."""

    bbox: tuple[float, float, float, float]
    cols: int
    rows: int

    @classmethod
    def for_frame(
        cls, bbox: tuple[float, float, float, float], width_mm: float, height_mm: float
    ) -> Grid:
        """The grid of a map frame of the given paper size, cells close to TARGET_CELL_MM."""
        cols = max(1, round(width_mm / TARGET_CELL_MM))
        rows = max(1, round(height_mm / TARGET_CELL_MM))
        return cls(bbox, cols, rows)

    @property
    def cell_width(self) -> float:
        """Width of a cell in map units."""
        return (self.bbox[2] - self.bbox[0]) / self.cols

    @property
    def cell_height(self) -> float:
        """Height of a cell in map units."""
        return (self.bbox[3] - self.bbox[1]) / self.rows

    def cell_box(self, cell: Cell) -> tuple[float, float, float, float]:
        """The cell's (minx, miny, maxx, maxy) in map units."""
        x0 = self.bbox[0] + cell.col * self.cell_width
        y1 = self.bbox[3] - cell.row * self.cell_height
        return (x0, y1 - self.cell_height, x0 + self.cell_width, y1)

    def cell_at(self, x: float, y: float) -> Cell | None:
        """The cell holding the point, or None outside the grid."""
        col = math.floor((x - self.bbox[0]) / self.cell_width)
        row = math.floor((self.bbox[3] - y) / self.cell_height)
        if 0 <= col < self.cols and 0 <= row < self.rows:
            return Cell(col, row)
        return None

    def cells_crossed(self, geometry: BaseGeometry) -> list[Cell]:
        """Every cell the geometry intersects, in reading order (columns then rows)."""
        if geometry.is_empty:
            return []
        minx, miny, maxx, maxy = geometry.bounds
        c0 = max(0, math.floor((minx - self.bbox[0]) / self.cell_width))
        c1 = min(self.cols - 1, math.floor((maxx - self.bbox[0]) / self.cell_width))
        r0 = max(0, math.floor((self.bbox[3] - maxy) / self.cell_height))
        r1 = min(self.rows - 1, math.floor((self.bbox[3] - miny) / self.cell_height))
        candidates = [Cell(c, r) for c in range(c0, c1 + 1) for r in range(r0, r1 + 1)]
        if not candidates:
            return []
        boxes = shapely.box(*zip(*(self.cell_box(cell) for cell in candidates), strict=True))
        prepared = geometry
        shapely.prepare(prepared)
        hits = shapely.intersects(prepared, boxes)
        return [cell for cell, hit in zip(candidates, hits, strict=True) if hit]

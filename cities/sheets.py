"""Map scale and sheets: one sheet when the area reads at a town-plan scale, else an atlas."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cities.grid import TARGET_CELL_MM, Cell, Grid

BBox = tuple[float, float, float, float]

#: Coarsest scale (1:N) a plan is drawn at on one sheet; beyond it the plan becomes an atlas.
MAX_SHEET_SCALE = 12_000.0
#: Scale of the sheets of an atlas: street names of a town read at it.
ATLAS_SCALE = 12_000.0
#: Share of the area's extent added around it on a single sheet.
PAD = 0.04


def units_per_mm(scale: float, latitude: float) -> float:
    """Web Mercator units per paper millimetre at scale 1:``scale`` and ``latitude``."""
    return scale / 1000.0 / max(math.cos(math.radians(latitude)), 0.1)


def scale_of(units: float, latitude: float) -> float:
    """The N of 1:N for ``units`` Web Mercator units per paper millimetre."""
    return units * 1000.0 * math.cos(math.radians(latitude))


def fit_units(bounds: BBox, width_mm: float, height_mm: float, pad: float = PAD) -> float:
    """Units per mm that fit ``bounds`` (padded) in a frame of the given size."""
    w = max(bounds[2] - bounds[0], 100.0) * (1 + 2 * pad)
    h = max(bounds[3] - bounds[1], 100.0) * (1 + 2 * pad)
    return max(w / width_mm, h / height_mm)


@dataclass(frozen=True)
class Sheet:
    """A block of grid cells printed on one map page; ``number`` counts from 1."""

    number: int
    col0: int
    row0: int
    cols: int
    rows: int

    def holds(self, cell: Cell) -> bool:
        """Whether ``cell`` is printed on this sheet."""
        return (
            self.col0 <= cell.col < self.col0 + self.cols
            and self.row0 <= cell.row < self.row0 + self.rows
        )


@dataclass(frozen=True)
class Atlas:
    """The grid of the whole plan and the sheets that print it (one, or an atlas of several)."""

    grid: Grid
    sheets: tuple[Sheet, ...]

    @property
    def is_atlas(self) -> bool:
        """Whether the plan has more than one sheet (an overview page and numbered sheets)."""
        return len(self.sheets) > 1

    def sheet_bbox(self, sheet: Sheet) -> BBox:
        """The map extent (EPSG:3857) of ``sheet``."""
        g = self.grid
        x0 = g.bbox[0] + sheet.col0 * g.cell_width
        y1 = g.bbox[3] - sheet.row0 * g.cell_height
        return (x0, y1 - sheet.rows * g.cell_height, x0 + sheet.cols * g.cell_width, y1)

    def sheet_of(self, cell: Cell) -> Sheet | None:
        """The sheet printing ``cell``."""
        return next((s for s in self.sheets if s.holds(cell)), None)

    def references(self, cells: Iterable[Cell]) -> str:
        """How the index points to ``cells``: "B3, C4", or per sheet "1: B3, B4; 2: C4"."""
        ordered = sorted(set(cells), key=lambda c: (c.col, c.row))
        if not self.is_atlas:
            return ", ".join(cell.label for cell in ordered)
        by_sheet: dict[int, list[str]] = {}
        for cell in ordered:
            sheet = self.sheet_of(cell)
            if sheet is not None:
                by_sheet.setdefault(sheet.number, []).append(cell.label)
        return "; ".join(f"{n}: {', '.join(labels)}" for n, labels in sorted(by_sheet.items()))


def single_sheet(bounds: BBox, width_mm: float, height_mm: float) -> Atlas:
    """One sheet showing ``bounds`` padded, centred in a frame of the given size."""
    units = fit_units(bounds, width_mm, height_mm)
    cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    half_w, half_h = width_mm * units / 2, height_mm * units / 2
    grid = Grid.for_frame((cx - half_w, cy - half_h, cx + half_w, cy + half_h), width_mm, height_mm)
    return Atlas(grid, (Sheet(1, 0, 0, grid.cols, grid.rows),))


def sheet_cells(width_mm: float, height_mm: float) -> tuple[int, int]:
    """Columns and rows of grid cells on a sheet frame of the given size."""
    return max(1, round(width_mm / TARGET_CELL_MM)), max(1, round(height_mm / TARGET_CELL_MM))


def atlas_grid(bounds: BBox, width_mm: float, height_mm: float, units: float) -> Grid:
    """A grid over ``bounds`` whose cells are those of a sheet frame at ``units`` per mm."""
    cols, rows = sheet_cells(width_mm, height_mm)
    cell_w, cell_h = width_mm / cols * units, height_mm / rows * units
    n_cols = max(1, math.ceil((bounds[2] - bounds[0]) / cell_w))
    n_rows = max(1, math.ceil((bounds[3] - bounds[1]) / cell_h))
    cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    half_w, half_h = n_cols * cell_w / 2, n_rows * cell_h / 2
    return Grid((cx - half_w, cy - half_h, cx + half_w, cy + half_h), n_cols, n_rows)


def atlas_of(grid: Grid, needed: Sequence[Cell], width_mm: float, height_mm: float) -> Atlas:
    """Sheets in a regular layout that together print every ``needed`` cell of ``grid``.

    The sheets are the blocks of one lattice (sheet-sized, edge to edge, never overlapping),
    shifted cell by cell to need the fewest; the blocks holding a needed cell are printed. The
    grid returned is extended over every sheet, so its letters and numbers run on across sheets.
    """
    cols, rows = sheet_cells(width_mm, height_mm)
    if not needed:
        needed = [Cell(c, r) for c in range(grid.cols) for r in range(grid.rows)]
    best: set[tuple[int, int]] | None = None
    shift = (0, 0)
    for ox in range(cols):
        for oy in range(rows):
            found = {((c.col + ox) // cols, (c.row + oy) // rows) for c in needed}
            # The fewest sheets; on a tie the layout closest to a rectangle of sheets.
            if best is None or (len(found), _spread(found)) < (len(best), _spread(best)):
                best, shift = found, (ox, oy)
    assert best is not None
    blocks = [(bx * cols - shift[0], by * rows - shift[1]) for bx, by in best]
    bx0 = min(c for c, _ in blocks)
    by0 = min(r for _, r in blocks)
    bx1 = max(c for c, _ in blocks) + cols
    by1 = max(r for _, r in blocks) + rows
    new = Grid(
        (
            grid.bbox[0] + bx0 * grid.cell_width,
            grid.bbox[3] - by1 * grid.cell_height,
            grid.bbox[0] + bx1 * grid.cell_width,
            grid.bbox[3] - by0 * grid.cell_height,
        ),
        bx1 - bx0,
        by1 - by0,
    )
    # Sheets numbered in reading order: by rows of sheets, then from west to east.
    ordered = sorted(blocks, key=lambda b: (b[1] // rows, b[0], b[1]))
    sheets = tuple(
        Sheet(n, c - bx0, r - by0, cols, rows) for n, (c, r) in enumerate(ordered, start=1)
    )
    return Atlas(new, sheets)


def _spread(blocks: set[tuple[int, int]]) -> int:
    """Sheets of the bounding rectangle of ``blocks`` left empty: fewer is a tidier layout."""
    xs = [x for x, _ in blocks]
    ys = [y for _, y in blocks]
    return (max(xs) - min(xs) + 1) * (max(ys) - min(ys) + 1) - len(blocks)

"""Compiled inner loops of the routing engine (numba): snapping, route lines, polylines."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

Points = NDArray[np.float64]
Indices = NDArray[np.int64]


#: Compiled code is kept beside this file, or in ``NUMBA_CACHE_DIR``; where neither can be
#: written (a read-only install) it is compiled again by each process.
CACHE = "NUMBA_CACHE_DIR" in os.environ or os.access(Path(__file__).parent, os.W_OK)


def compiled(function: F) -> F:
    """``function`` compiled to machine code on first use."""
    return cast(F, njit(cache=CACHE, nogil=True)(function))


#: The former name, still imported elsewhere.
_compiled = compiled


@compiled
def grid_frame(boxes: Points, cell: float) -> tuple[float, float, int, int]:
    """The origin, columns and rows of the grid of cells ``cell`` wide over the pieces'
    bounding boxes (x0, y0, x1, y1 per row)."""
    count = boxes.shape[0]
    left, bottom = np.inf, np.inf
    right, top = -np.inf, -np.inf
    for i in range(count):
        left = min(left, boxes[i, 0], boxes[i, 2])
        right = max(right, boxes[i, 0], boxes[i, 2])
        bottom = min(bottom, boxes[i, 1], boxes[i, 3])
        top = max(top, boxes[i, 1], boxes[i, 3])
    if count == 0:
        left = bottom = right = top = 0.0
    return left, bottom, int((right - left) // cell) + 1, int((top - bottom) // cell) + 1


@compiled
def cell_span(
    boxes: Points, i: int, left: float, bottom: float, cell: float
) -> tuple[int, int, int, int]:
    """The first and last column, then row, of the cells that piece ``i``'s bounding box (of
    ``boxes``) touches in a grid of origin ``left``, ``bottom``."""
    c0 = int((min(boxes[i, 0], boxes[i, 2]) - left) // cell)
    c1 = int((max(boxes[i, 0], boxes[i, 2]) - left) // cell)
    r0 = int((min(boxes[i, 1], boxes[i, 3]) - bottom) // cell)
    r1 = int((max(boxes[i, 1], boxes[i, 3]) - bottom) // cell)
    return c0, c1, r0, r1


@compiled
def build_grid(boxes: Points, cell: float) -> tuple[float, float, int, int, Indices, Indices]:
    """A uniform grid over the pieces' bounding boxes (x0, y0, x1, y1 per row): its origin,
    columns and rows, then per cell the range of ``members`` (piece numbers) touching it."""
    count = boxes.shape[0]
    left, bottom, columns, rows = grid_frame(boxes, cell)
    starts = np.zeros(columns * rows + 1, dtype=np.int64)
    for step in range(2):
        filled = starts[:-1].copy()
        members = np.empty(starts[-1], dtype=np.int64)
        for i in range(count):
            c0, c1, r0, r1 = cell_span(boxes, i, left, bottom, cell)
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    slot = r * columns + c
                    if step == 0:
                        starts[slot + 1] += 1
                    else:
                        members[filled[slot]] = i
                        filled[slot] += 1
        if step == 0:
            starts = np.cumsum(starts)
    return left, bottom, columns, rows, starts, members


@compiled
def grid_cells(
    boxes: Points, pieces: Indices, left: float, bottom: float, cell: float, columns: int
) -> tuple[Indices, Indices]:
    """The cells each of ``pieces`` (with bounding boxes ``boxes``) touches in the grid of
    :func:`build_grid` (origin ``left``, ``bottom``): cell and piece of each pair."""
    total = 0
    for step in range(2):
        if step == 1:
            cells = np.empty(total, dtype=np.int64)
            owners = np.empty(total, dtype=np.int64)
        k = 0
        for i in range(boxes.shape[0]):
            c0, c1, r0, r1 = cell_span(boxes, i, left, bottom, cell)
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    if step == 1:
                        cells[k] = r * columns + c
                        owners[k] = pieces[i]
                    k += 1
        total = k
    return cells, owners


@compiled
def member_places(
    starts: Indices, members: Indices, cells: Indices, pieces: Indices, found: bool
) -> Indices:
    """Where in ``members`` (per cell ``starts``, sorted in each) each of ``pieces`` is in
    its cell of ``cells`` (``found``: it is there), else where it would be inserted."""
    places = np.empty(len(cells), dtype=np.int64)
    for k in range(len(cells)):
        lo, hi = starts[cells[k]], starts[cells[k] + 1]
        while lo < hi:
            mid = (lo + hi) // 2
            if members[mid] < pieces[k]:
                lo = mid + 1
            else:
                hi = mid
        if found and (lo == starts[cells[k] + 1] or members[lo] != pieces[k]):
            return places[:0]
        places[k] = lo
    return places


def regrid(
    starts: Indices,
    members: Indices,
    frame: tuple[float, float, int, int, float],
    pieces: Indices,
    before: Points,
    after: Points,
) -> tuple[Indices, Indices] | None:
    """The cell lists of :func:`build_grid` (``starts``, ``members``, of the grid ``frame``:
    origin, columns, rows, cell) where the boxes of ``pieces`` changed from ``before`` to
    ``after`` (the grid's frame the same): those of a new build, made by moving only the
    pieces that change cells; None where they do not hold the pieces as they were."""
    left, bottom, columns, _, cell = frame
    old_cells, old_pieces = grid_cells(before, pieces, left, bottom, cell, columns)
    new_cells, new_pieces = grid_cells(after, pieces, left, bottom, cell, columns)
    count = max(1, int(pieces.max()) + 1) if len(pieces) else 1
    old_keys = old_cells * count + old_pieces
    new_keys = new_cells * count + new_pieces
    gone = np.setdiff1d(old_keys, new_keys)
    came = np.setdiff1d(new_keys, old_keys)
    if not len(gone) and not len(came):
        return starts, members
    places = member_places(starts, members, gone // count, gone % count, True)
    if len(places) != len(gone):
        return None
    cells = len(starts) - 1
    kept_starts = starts.copy()
    kept_starts[1:] -= np.cumsum(np.bincount(gone // count, minlength=cells))
    kept = np.delete(members, places)
    cells_in, pieces_in = came // count, came % count
    at = member_places(kept_starts, kept, cells_in, pieces_in, False)
    new_starts = kept_starts
    new_starts[1:] += np.cumsum(np.bincount(cells_in, minlength=cells))
    return new_starts, np.insert(kept, at, pieces_in)


@compiled
def nearest_piece(
    x: float,
    y: float,
    pieces: Points,
    allowed: NDArray[np.bool_],
    left: float,
    bottom: float,
    cell: float,
    columns: int,
    rows: int,
    starts: Indices,
    members: Indices,
    reach: float,
) -> tuple[int, float, float]:
    """The allowed piece (x0, y0, x1, y1 per row) nearest to (x, y) within ``reach``: its
    number (-1 if none), the position along it (0-1) and the distance."""
    best, best_t, best_d2 = -1, 0.0, np.inf
    column = int(np.floor((x - left) / cell))
    row = int(np.floor((y - bottom) / cell))
    # Rings of cells around the point's cell, nearest first; the first rings may lie off
    # the grid.
    ring = max(0, -column, column - columns + 1, -row, row - rows + 1)
    last_ring = ring + max(columns, rows)
    while ring <= last_ring:
        # The point lies inside its cell: ring r is at least r - 1 whole cells away.
        floor = max(0.0, (ring - 1) * cell)
        if floor > reach or (best >= 0 and floor * floor >= best_d2):
            break
        for r in range(row - ring, row + ring + 1):
            if r < 0 or r >= rows:
                continue
            # Whole rows at the ring's top and bottom, only its two sides in between.
            step = 1 if ring == 0 or r == row - ring or r == row + ring else 2 * ring
            for c in range(column - ring, column + ring + 1, step):
                if c < 0 or c >= columns:
                    continue
                slot = r * columns + c
                for k in range(starts[slot], starts[slot + 1]):
                    i = members[k]
                    if not allowed[i]:
                        continue
                    x0, y0, x1, y1 = pieces[i, 0], pieces[i, 1], pieces[i, 2], pieces[i, 3]
                    dx, dy = x1 - x0, y1 - y0
                    norm = dx * dx + dy * dy
                    t = 0.0 if norm <= 0.0 else ((x - x0) * dx + (y - y0) * dy) / norm
                    t = min(1.0, max(0.0, t))
                    ox, oy = x0 + t * dx - x, y0 + t * dy - y
                    d2 = ox * ox + oy * oy
                    if d2 < best_d2 or (d2 == best_d2 and i < best):
                        best, best_t, best_d2 = i, t, d2
        ring += 1
    if best >= 0 and best_d2 > reach * reach:
        return -1, 0.0, 0.0
    return best, best_t, np.sqrt(best_d2)


@compiled
def _point_at(points: Points, along: Points, first: int, stop: int, metres: float) -> Points:
    """The point ``metres`` along the edge whose points are ``first`` to ``stop`` - 1."""
    i = first + 1
    while i < stop - 1 and along[i] < metres:
        i += 1
    span = along[i] - along[i - 1]
    t = 0.0 if span <= 0.0 else (metres - along[i - 1]) / span
    point: Points = points[i - 1] if t <= 0.0 else points[i]
    if 0.0 < t < 1.0:
        point = points[i - 1] + (points[i] - points[i - 1]) * t
    return point


@compiled
def route_line(
    edges: Indices, start: float, end: float, offsets: Indices, points: Points, along: Points
) -> Points:
    """The line along ``edges`` from ``start`` (a fraction of the first) to ``end`` (of the
    last), without repeated consecutive points, at least two of them."""
    total = 2
    for e in edges:
        total += offsets[e + 1] - offsets[e]
    out = np.empty((total, 2), dtype=np.float64)
    out[0] = 0.0
    n = 0
    last = len(edges) - 1
    for k in range(len(edges)):
        e = edges[k]
        first, stop = offsets[e], offsets[e + 1]
        length = along[stop - 1]
        low = start * length if k == 0 else 0.0
        high = end * length if k == last else length
        for i in range(first - 1 if k == 0 else first, stop + 1):
            # The cut start (first edge only), the points strictly inside, the cut end.
            if i == first - 1:
                point = _point_at(points, along, first, stop, low)
            elif i == stop:
                point = _point_at(points, along, first, stop, high)
            elif low < along[i] < high:
                point = points[i]
            else:
                continue
            if n == 0 or point[0] != out[n - 1, 0] or point[1] != out[n - 1, 1]:
                out[n] = point
                n += 1
    if n == 1:
        out[1] = out[0]
        n = 2
    return out[:n].copy()


@compiled
def simplify(points: Points, tolerance: float) -> Points:
    """Douglas-Peucker: the points of ``points`` kept at ``tolerance`` (same units)."""
    count = len(points)
    if count < 3:
        return points.copy()
    keep = np.zeros(count, dtype=np.bool_)
    keep[0] = keep[count - 1] = True
    stack = np.empty((count, 2), dtype=np.int64)
    stack[0, 0], stack[0, 1] = 0, count - 1
    depth = 1
    squared = tolerance * tolerance
    while depth:
        depth -= 1
        a, b = stack[depth, 0], stack[depth, 1]
        ax, ay = points[a, 0], points[a, 1]
        dx, dy = points[b, 0] - ax, points[b, 1] - ay
        norm = dx * dx + dy * dy
        far, far_d2 = -1, squared
        for i in range(a + 1, b):
            px, py = points[i, 0] - ax, points[i, 1] - ay
            t = 0.0 if norm <= 0.0 else min(1.0, max(0.0, (px * dx + py * dy) / norm))
            ox, oy = px - t * dx, py - t * dy
            d2 = ox * ox + oy * oy
            if d2 > far_d2:
                far, far_d2 = i, d2
        if far >= 0:
            keep[far] = True
            stack[depth, 0], stack[depth, 1] = a, far
            stack[depth + 1, 0], stack[depth + 1, 1] = far, b
            depth += 2
    return points[keep]


@compiled
def encode_polyline(points: Points, precision: int) -> tuple[NDArray[np.uint8], Indices]:
    """Google's encoded polyline of (lon, lat) points (stored latitude first): the characters
    and, per point, how many of them it took."""
    factor = 10.0**precision
    # At most 13 characters for any 64-bit value.
    chars = np.empty(len(points) * 2 * 13, dtype=np.uint8)
    sizes = np.empty(len(points), dtype=np.int64)
    n = 0
    last_lat, last_lon = 0, 0
    for i in range(len(points)):
        before = n
        # np.rint rounds halves to even, like Python's round().
        lat = int(np.rint(points[i, 1] * factor))
        lon = int(np.rint(points[i, 0] * factor))
        for delta in (lat - last_lat, lon - last_lon):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                chars[n] = (0x20 | (value & 0x1F)) + 63
                n += 1
                value >>= 5
            chars[n] = value + 63
            n += 1
        last_lat, last_lon = lat, lon
        sizes[i] = n - before
    return chars[:n].copy(), sizes

"""Street and place names written by the plan itself, placed so that none overlaps another."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cairo
import numpy as np
import shapely
import shapely.ops
from PIL import Image, ImageDraw
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from cities.flow import PT
from cities.style import RGB

#: Face of the street names: condensed, so names fit along short streets.
LABEL_FONT = "DejaVu Sans Condensed"
#: Dark pixels of the map image: its pictograms (roads and areas are light).
DARK = 90
#: Largest share of dark pixels under a name: more means it would hide a pictogram.
MAX_INK = 0.04
#: Share of the em from the centre line of a name down to its baseline.
BASELINE = 0.36
#: Ascent and descent of the face, in ems (DejaVu).
ASCENT, DESCENT = 0.78, 0.24
#: Long streets get a name again every this many millimetres of paper.
REPEAT_MM = 110.0
#: A name set beside its street further than this (mm) gets a leader line to it.
LEADER_MM = 1.2
INK: RGB = (0.1, 0.1, 0.1)
#: Kinds of names a map carries, in the order they win a spot: places and streets first, then
#: stations and other facilities, then water (a name that would overlap an earlier one is dropped).
STREET, PLACE, POI, WATER = "street", "place", "poi", "water"


def set_label_font(ctx: cairo.Context[Any], size_pt: float) -> None:
    """Select the street-name face at ``size_pt`` (the context draws in millimetres)."""
    set_kind_font(ctx, STREET, size_pt)


def set_kind_font(ctx: cairo.Context[Any], kind: str, size_pt: float, bold: bool = False) -> None:
    """Select the face of a ``kind`` of name: condensed for streets, oblique for water (as the
    styles set water names), the plan's face otherwise."""
    from cities.flow import FONT, font_options

    family, slant = FONT, cairo.FONT_SLANT_NORMAL
    if kind == STREET:
        family = LABEL_FONT
    elif kind == WATER:
        slant = cairo.FONT_SLANT_OBLIQUE
    weight = cairo.FONT_WEIGHT_BOLD if bold else cairo.FONT_WEIGHT_NORMAL
    ctx.select_font_face(family, slant, weight)
    ctx.set_font_size(size_pt * PT)
    ctx.set_font_options(font_options())


class TextWidths:
    """Advance widths (mm) of names, measured once each."""

    def __init__(self) -> None:
        self._surface = cairo.ImageSurface(cairo.FORMAT_A8, 1, 1)
        self._ctx = cairo.Context(self._surface)
        self._cache: dict[tuple[str, float, str, bool], float] = {}

    def __call__(self, text: str, size_pt: float, kind: str = STREET, bold: bool = False) -> float:
        """The advance width of ``text`` at ``size_pt`` in the face of ``kind``."""
        key = (text, size_pt, kind, bold)
        if key not in self._cache:
            set_kind_font(self._ctx, kind, size_pt, bold)
            self._cache[key] = float(self._ctx.text_extents(text).x_advance)
        return self._cache[key]


#: Resolution (pixels per mm) the dark pixels are kept at: enough to see text.
INK_PX_PER_MM = 4.0


class InkMap:
    """The dark pixels of a rendered map frame (at about INK_PX_PER_MM), decoded once."""

    def __init__(self, png: bytes, frame_x: float, frame_y: float, frame_w: float) -> None:
        with Image.open(io.BytesIO(png)) as image:
            dark = np.asarray(image.convert("L")) < DARK
        # Kept coarser than the print: a block is dark when any of its pixels is.
        k = max(1, int(dark.shape[1] / frame_w / INK_PX_PER_MM))
        h, w = dark.shape[0] // k * k, dark.shape[1] // k * k
        blocks = dark[:h, :w].reshape(h // k, k, w // k, k)
        self.dark: np.ndarray[Any, Any] = np.asarray(blocks.any(axis=(1, 3)))
        self.origin = (frame_x, frame_y)
        self.px_per_mm = dark.shape[1] / frame_w / k

    def share(self, box: Polygon) -> float:
        """Share of dark pixels under ``box`` (page mm), sampled every half millimetre."""
        minx, miny, maxx, maxy = box.bounds
        xs = np.arange(minx, maxx + 0.25, 0.5)
        ys = np.arange(miny, maxy + 0.25, 0.5)
        gx, gy = np.meshgrid(xs, ys)
        inside = shapely.contains_xy(box, gx, gy)
        if not inside.any():
            return 0.0
        px = ((gx[inside] - self.origin[0]) * self.px_per_mm).astype(int)
        py = ((gy[inside] - self.origin[1]) * self.px_per_mm).astype(int)
        h, w = self.dark.shape
        ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        if not ok.any():
            return 0.0
        return float(self.dark[py[ok], px[ok]].mean())

    def with_boxes(self, boxes: Sequence[Polygon]) -> np.ndarray[Any, Any]:
        """The dark mask with ``boxes`` (page mm) filled in: where pictograms must not go."""
        image = Image.fromarray(self.dark.astype(np.uint8) * 255)
        draw = ImageDraw.Draw(image)
        for box in boxes:
            points = [
                ((x - self.origin[0]) * self.px_per_mm, (y - self.origin[1]) * self.px_per_mm)
                for x, y in box.exterior.coords
            ]
            draw.polygon(points, fill=255)
        return np.asarray(image) > 0


@dataclass(frozen=True)
class LabelTarget:
    """A street (or river) to name on one map frame: its line and where a name of it may stand
    (page mm)."""

    key: int
    text: str
    line: BaseGeometry
    allowed: BaseGeometry
    kind: str = STREET
    colour: RGB = INK


@dataclass(frozen=True)
class StreetLabel:
    """A street name on the page: baseline start (mm), direction, size, box, optional leader."""

    key: int
    text: str
    x: float
    y: float
    angle: float
    size: float
    box: Polygon
    leader: tuple[tuple[float, float], tuple[float, float]] | None = None
    #: Street, place, POI or water: the face it is set in (see set_kind_font).
    kind: str = STREET
    #: Towns and villages are named in bold.
    bold: bool = False
    colour: RGB = INK


@dataclass(frozen=True)
class PointTarget:
    """A place to name on one map frame: its point (page mm), the size and weight of its name."""

    text: str
    x: float
    y: float
    size: float
    bold: bool
    kind: str = PLACE
    colour: RGB = INK
    #: Radius (mm) around the point kept clear (a pictogram drawn there); 0: named on it.
    clear: float = 0.0


@dataclass(frozen=True)
class AreaTarget:
    """A lake or reservoir to name inside its outline (page mm)."""

    text: str
    area: BaseGeometry
    size: float
    colour: RGB


class Occupied:
    """Boxes taken on the page, bucketed by 10 mm squares for quick overlap tests."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, int], list[Polygon]] = defaultdict(list)

    def _keys(self, box: Polygon) -> list[tuple[int, int]]:
        minx, miny, maxx, maxy = box.bounds
        return [
            (i, j)
            for i in range(math.floor(minx / 10), math.floor(maxx / 10) + 1)
            for j in range(math.floor(miny / 10), math.floor(maxy / 10) + 1)
        ]

    def hits(self, box: Polygon) -> bool:
        """Whether ``box`` overlaps a taken box."""
        return any(box.intersects(other) for key in self._keys(box) for other in self._buckets[key])

    def add(self, box: Polygon) -> None:
        """Take ``box``."""
        for key in self._keys(box):
            self._buckets[key].append(box)


def _box(
    x: float, y: float, angle: float, width: float, em: float, halo: float
) -> tuple[Polygon, tuple[float, float], tuple[float, float]]:
    """The box of a name with baseline start (x, y), and the ends of its baseline."""
    ux, uy = math.cos(angle), math.sin(angle)
    dx, dy = -uy, ux  # "down" in the text's frame
    top, bottom = -(ASCENT * em + halo), DESCENT * em + halo
    corners = [
        (x - ux * halo + dx * top, y - uy * halo + dy * top),
        (x + ux * (width + halo) + dx * top, y + uy * (width + halo) + dy * top),
        (x + ux * (width + halo) + dx * bottom, y + uy * (width + halo) + dy * bottom),
        (x - ux * halo + dx * bottom, y - uy * halo + dy * bottom),
    ]
    # The ends of the baseline: where the PDF says the text starts, and where it ends.
    return Polygon(corners), (x, y), (x + ux * width, y + uy * width)


class Placer:
    """Places street names one frame at a time, keeping each off the others and off map text."""

    def __init__(self, ink: InkMap, frame: Polygon, size_pt: float) -> None:
        self.ink = ink
        self.frame = frame
        self.size = size_pt
        self.widths = TextWidths()
        self.taken = Occupied()
        self.labels: list[StreetLabel] = []

    def _fits(self, box: Polygon, ends: Sequence[tuple[float, float]], target: LabelTarget) -> bool:
        """In the frame, clear of other names, and starting (and ending) in the street's cells."""
        return (
            self.frame.contains(box)
            and all(target.allowed.covers(Point(p)) for p in ends)
            and not self.taken.hits(box)
        )

    def _along(
        self, target: LabelTarget, size: float, max_ink: float, away: Sequence[Point]
    ) -> StreetLabel | None:
        """The best place for the name along its line, or None."""
        em = size * PT
        width = self.widths(target.text, size, target.kind)
        halo = 0.35 * em
        best: tuple[float, StreetLabel] | None = None
        for part in getattr(target.line, "geoms", [target.line]):
            if not isinstance(part, LineString) or part.length < width * 1.02:
                continue
            length = part.length
            count = max(1, min(30, int((length - width) / 2.0)))
            for k in range(count + 1):
                centre = width / 2 + (length - width) * (k / count if count else 0.5)
                a = part.interpolate(centre - width / 2)
                b = part.interpolate(centre + width / 2)
                piece = shapely.ops.substring(part, centre - width / 2, centre + width / 2)
                chord = LineString([a, b])
                if chord.length < width * 0.9:
                    continue
                if max(chord.distance(Point(c)) for c in piece.coords) > em * 0.45:
                    continue
                if b.x < a.x:
                    a, b = b, a
                angle = math.atan2(b.y - a.y, b.x - a.x)
                # The baseline sits below the centre line by BASELINE em.
                x = a.x - math.sin(angle) * BASELINE * em
                y = a.y + math.cos(angle) * BASELINE * em
                box, start, end = _box(x, y, angle, width, em, halo)
                if not self._fits(box, (start, end), target):
                    continue
                if any(box.distance(p) < REPEAT_MM * 0.7 for p in away):
                    continue
                ink = self.ink.share(box)
                if ink > max_ink:
                    continue
                score = ink * 10 + abs(math.sin(angle)) * 0.3 + abs(k / max(count, 1) - 0.5) * 0.2
                if best is None or score < best[0]:
                    label = StreetLabel(target.key, target.text, x, y, angle, size, box,
                                        kind=target.kind, colour=target.colour)  # fmt: skip
                    best = (score, label)
        return best[1] if best else None

    def _beside(
        self, target: LabelTarget, size: float, max_ink: float, *, far: bool = False
    ) -> StreetLabel | None:
        """A level name next to the street (with a leader line when it stands off it).

        The name starts and ends in the street's cells; ``far`` looks further away and only
        asks its start to be in them (for long names of short streets).
        """
        em = size * PT
        width = self.widths(target.text, size)
        halo = 0.35 * em
        line = target.line
        samples = [line.interpolate(t, normalized=True) for t in np.linspace(0.0, 1.0, 11)]
        samples.sort(key=lambda p: abs(line.project(p, normalized=True) - 0.5))
        h = (ASCENT + DESCENT) * em + 2 * halo
        steps = (0.6, 1.4, 2.6, 4.0, 6.0) + ((9.0, 13.0, 18.0) if far else ())
        for step in steps:
            for p in samples:
                for cx, cy in (
                    (p.x, p.y - h / 2 - step),
                    (p.x, p.y + h / 2 + step),
                    (p.x + width / 2 + step, p.y),
                    (p.x - width / 2 - step, p.y),
                ):
                    x, y = cx - width / 2, cy + BASELINE * em
                    box, start, end = _box(x, y, 0.0, width, em, halo)
                    if not self._fits(box, (start,) if far else (start, end), target):
                        continue
                    if self.ink.share(box) > max_ink:
                        continue
                    leader = None
                    if box.distance(p) > LEADER_MM:
                        near = shapely.ops.nearest_points(box.exterior, p)[0]
                        leader = ((near.x, near.y), (p.x, p.y))
                    return StreetLabel(target.key, target.text, x, y, 0.0, size, box, leader)
        return None

    def _anywhere(self, target: LabelTarget, size: float) -> StreetLabel | None:
        """The free spot of the street's cells nearest to it, with a leader line: a last resort."""
        em = size * PT
        width = self.widths(target.text, size)
        halo = 0.35 * em
        middle = target.line.interpolate(0.5, normalized=True)
        minx, miny, maxx, maxy = target.allowed.bounds
        xs, ys = np.meshgrid(np.arange(minx, maxx, 1.5), np.arange(miny, maxy, 1.5))
        starts = sorted(
            zip(xs.ravel().tolist(), ys.ravel().tolist(), strict=True),
            key=lambda p: math.hypot(p[0] + width / 2 - middle.x, p[1] - middle.y),
        )
        for sx, sy in starts:
            box, start, _ = _box(sx, sy + BASELINE * em, 0.0, width, em, halo)
            if not self._fits(box, (start,), target):
                continue
            near = shapely.ops.nearest_points(box.exterior, target.line)
            leader = ((near[0].x, near[0].y), (near[1].x, near[1].y))
            return StreetLabel(target.key, target.text, sx, sy + BASELINE * em, 0.0, size, box,
                               leader)  # fmt: skip
        return None

    def _keep(self, label: StreetLabel) -> None:
        self.taken.add(label.box)
        self.labels.append(label)

    def block(self, box: Polygon) -> None:
        """Keep names off ``box`` (something drawn there that is not a name)."""
        self.taken.add(box)

    def place_points(self, targets: Sequence[PointTarget]) -> list[StreetLabel]:
        """Name each place (in the order given) on its point or near it; those placed.

        A point with a pictogram (``clear`` > 0) is named beside it, never over it.
        """
        placed: list[StreetLabel] = []
        for target in targets:
            # A name beside a pictogram may go smaller before it is dropped.
            tries = [(target, MAX_INK * 3), (target, 1.0)]
            if target.clear:
                tries.append((replace(target, size=target.size * 0.85), 1.0))
            label = None
            for attempt, max_ink in tries:
                width = self.widths(attempt.text, attempt.size, attempt.kind, attempt.bold)
                label = self._near(attempt, width, max_ink)
                if label is not None:
                    break
            if label is not None:
                self.taken.add(label.box)
                placed.append(label)
        return placed

    def _near(self, target: PointTarget, width: float, max_ink: float) -> StreetLabel | None:
        """The name of ``target`` centred on its point, else the nearest free spot around it."""
        em = target.size * PT
        height = (ASCENT + DESCENT) * em
        if target.clear:
            # Beside the pictogram: right, left, above, below, then at its corners, a little
            # further each round.
            spots = [
                (dx * (width / 2 + step), dy * (height / 2 + step))
                for step in (target.clear + 0.3, target.clear + 1.2, target.clear + 2.5)
                for dx, dy in ((1, 0), (-1, 0), (0, -1), (0, 1))
            ] + [
                (dx * (width / 2 + step), dy * (height / 2 + target.clear * 0.5))
                for step in (target.clear * 0.3, target.clear + 0.3, target.clear + 1.2)
                for dx, dy in ((1, -1), (1, 1), (-1, -1), (-1, 1))
            ]
        else:
            spots = [(0.0, 0.0)] + [
                (dx * (width / 2 + step), dy * (height / 2 + step))
                for step in (1.0, 2.5, 4.5, 7.0)
                for dx, dy in ((0, -1), (0, 1), (1, 0), (-1, 0))
            ]
        for dx, dy in spots:
            x, y = target.x + dx - width / 2, target.y + dy + BASELINE * em
            box, _, _ = _box(x, y, 0.0, width, em, 0.35 * em)
            if self.frame.contains(box) and not self.taken.hits(box):
                if self.ink.share(box) <= max_ink:
                    return StreetLabel(-1, target.text, x, y, 0.0, target.size, box,
                                       kind=target.kind, bold=target.bold,
                                       colour=target.colour)  # fmt: skip
        return None

    def place_lines(self, targets: Sequence[LabelTarget], size: float) -> list[StreetLabel]:
        """Name each line (rivers, in the order given) along itself where a straight enough
        stretch is free, again every REPEAT_MM of it; those placed."""
        placed: list[StreetLabel] = []
        for target in targets:
            mine: list[Point] = []
            for _ in range(1 + int(target.line.length // REPEAT_MM)):
                label = self._along(target, size, MAX_INK * 2, mine)
                if label is None:
                    break
                self.taken.add(label.box)
                placed.append(label)
                mine.append(Point(label.x, label.y))
        return placed

    def place_areas(self, targets: Sequence[AreaTarget]) -> list[StreetLabel]:
        """Name each area (lakes, in the order given) inside its outline, as near its middle
        as is free; an area too small for its name is left unnamed."""
        placed: list[StreetLabel] = []
        for target in targets:
            label = self._inside(target)
            if label is not None:
                self.taken.add(label.box)
                placed.append(label)
        return placed

    def _inside(self, target: AreaTarget) -> StreetLabel | None:
        area = shapely.intersection(target.area, self.frame)
        if area.is_empty or area.area <= 0:
            return None
        em = target.size * PT
        width = self.widths(target.text, target.size, WATER)
        minx, miny, maxx, maxy = area.bounds
        if maxx - minx < width:
            return None
        parts = [p for p in getattr(area, "geoms", [area]) if p.geom_type == "Polygon"]
        middle = shapely.ops.polylabel(max(parts, key=lambda p: p.area), tolerance=0.5)
        xs, ys = np.meshgrid(np.arange(minx, maxx, 1.0), np.arange(miny, maxy, 1.0))
        centres = sorted(
            zip(xs.ravel().tolist(), ys.ravel().tolist(), strict=True),
            key=lambda p: math.hypot(p[0] - middle.x, p[1] - middle.y),
        )
        for cx, cy in [(middle.x, middle.y), *centres[:400]]:
            x, y = cx - width / 2, cy + BASELINE * em
            ink, _, _ = _box(x, y, 0.0, width, em, 0.0)
            if not area.contains(ink):
                continue
            box, _, _ = _box(x, y, 0.0, width, em, 0.35 * em)
            if self.frame.contains(box) and not self.taken.hits(box):
                return StreetLabel(-1, target.text, x, y, 0.0, target.size, box, kind=WATER,
                                   colour=target.colour)  # fmt: skip
        return None

    def place(self, targets: Sequence[LabelTarget]) -> list[LabelTarget]:
        """Name every target once (shortest streets first), then long ones again; the unnamed."""
        order = sorted(targets, key=lambda t: t.line.length)
        left = list(order)
        attempts: tuple[Callable[[LabelTarget], StreetLabel | None], ...] = (
            lambda t: self._along(t, self.size, MAX_INK, ()),
            lambda t: self._beside(t, self.size, MAX_INK),
            lambda t: self._along(t, self.size * 0.85, MAX_INK * 2, ()),
            lambda t: self._beside(t, self.size * 0.85, MAX_INK * 3),
            lambda t: self._beside(t, self.size * 0.85, 1.0),
            lambda t: self._beside(t, self.size * 0.85, MAX_INK * 3, far=True),
            lambda t: self._beside(t, self.size * 0.75, 1.0, far=True),
            lambda t: self._anywhere(t, self.size * 0.75),
        )
        for attempt in attempts:
            still: list[LabelTarget] = []
            for target in left:
                label = attempt(target)
                if label is None:
                    still.append(target)
                else:
                    self._keep(label)
            left = still
        for target in reversed(order):
            wanted = int(target.line.length // REPEAT_MM)
            for _ in range(wanted):
                mine = [Point(label.x, label.y) for label in self.labels if label.key == target.key]
                label = self._along(target, self.size, MAX_INK, mine)
                if label is None:
                    break
                self._keep(label)
        return left


def draw_labels(ctx: cairo.Context[Any], labels: Sequence[StreetLabel]) -> None:
    """Leader lines, then each name as real text (findable in the PDF) on a white halo."""
    ctx.save()
    ctx.set_source_rgb(*INK)
    ctx.set_line_width(0.18)
    for label in labels:
        if label.leader is not None:
            (x0, y0), (x1, y1) = label.leader
            ctx.move_to(x0, y0)
            ctx.line_to(x1, y1)
            ctx.stroke()
            ctx.arc(x1, y1, 0.35, 0, 2 * math.pi)
            ctx.fill()
    for label in labels:
        set_kind_font(ctx, label.kind, label.size, label.bold)
        ctx.save()
        ctx.translate(label.x, label.y)
        ctx.rotate(label.angle)
        ctx.move_to(0, 0)
        ctx.text_path(label.text)
        ctx.set_source_rgb(1, 1, 1)
        ctx.set_line_width(0.55 * label.size * PT)
        ctx.set_line_join(cairo.LINE_JOIN_ROUND)
        ctx.stroke()
        ctx.move_to(0, 0)
        ctx.set_source_rgb(*label.colour)
        ctx.show_text(label.text)
        ctx.restore()
    ctx.restore()

"""Page composition: title, map frame with grid, index panel, legend, scale bar, north arrow."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cairo
import numpy as np
import shapely
from PIL import Image
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from cities.facilities import Category, Facility
from cities.flow import PT, Column, Item, Measure, Placed, TextSizes, flow, set_font
from cities.grid import Grid, column_label
from cities.icons import draw_icon
from cities.labels import InkMap, StreetLabel, draw_labels
from cities.paper import Layout
from cities.sheets import Atlas, Sheet
from cities.streets import StreetEntry
from cities.style import LegendEntry

ATTRIBUTION = "© les contributeurs d'OpenStreetMap"
#: Largest map image asked of the renderer (pixels, about 240 MB decoded): it bounds memory.
#: Every paper up to A1 prints its map at 300 dpi; A0 gets about 250 dpi.
MAX_MAP_PIXELS = 60_000_000
BBox = tuple[float, float, float, float]
INK = (0.1, 0.1, 0.1)
#: Colour of the commune boundary drawn over the map.
BOUNDARY = (0.45, 0.1, 0.35)
MONTHS = (
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
).split()


@dataclass(frozen=True)
class Rect:
    """A rectangle on the page, in millimetres from the top-left corner."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class PageGeometry:
    """Where everything goes on the map page."""

    width: float
    height: float
    scale: float  # furniture size relative to A3
    margin: float
    title: Rect
    frame: Rect
    label_band: float
    panel: Rect | None
    footer: Rect
    column_width: float
    sizes: TextSizes


def page_geometry(width: float, height: float, layout: Layout) -> PageGeometry:
    """Lay out the map page of a ``width`` × ``height`` mm sheet."""
    s = min(2.2, max(0.75, math.sqrt(width * height / (297 * 420))))
    margin = 7 + 3 * s
    title_h = 15 * s
    footer_h = 20 * s
    band = 5 * s
    gap = 4 * s
    sizes = TextSizes(body=max(6.0, 7.0 * s), letter=max(8.0, 9.5 * s), title=max(9.0, 11 * s))
    column_width = 62 * sizes.body / 7.0
    inner = Rect(margin, margin + title_h, width - 2 * margin, height - 2 * margin - title_h)
    body_h = inner.h - footer_h - gap
    panel: Rect | None = None
    if layout is Layout.INDEX_SIDE:
        columns = max(1, round(inner.w * 0.3 / column_width))
        panel_w = columns * column_width + (columns - 1) * gap
        panel = Rect(inner.x + inner.w - panel_w, inner.y, panel_w, body_h)
        map_area = Rect(inner.x, inner.y, inner.w - panel_w - gap, body_h)
    elif layout is Layout.INDEX_BELOW:
        panel_h = body_h * 0.33
        panel = Rect(inner.x, inner.y + body_h - panel_h, inner.w, panel_h)
        map_area = Rect(inner.x, inner.y, inner.w, body_h - panel_h - gap)
    else:
        map_area = Rect(inner.x, inner.y, inner.w, body_h)
    frame = Rect(map_area.x + band, map_area.y + band, map_area.w - 2 * band, map_area.h - 2 * band)
    footer = Rect(inner.x, inner.y + inner.h - footer_h, inner.w, footer_h)
    return PageGeometry(
        width,
        height,
        s,
        margin,
        Rect(margin, margin, width - 2 * margin, title_h),
        frame,
        band,
        panel,
        footer,
        column_width,
        sizes,
    )


def frame_bbox(area_bounds: BBox, frame: Rect, pad: float = 0.04) -> BBox:
    """The map extent (EPSG:3857) shown in ``frame``: the area, padded, at the frame's shape."""
    xmin, ymin, xmax, ymax = area_bounds
    w = (xmax - xmin) * (1 + 2 * pad) or 100.0
    h = (ymax - ymin) * (1 + 2 * pad) or 100.0
    units_per_mm = max(w / frame.w, h / frame.h)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    half_w, half_h = frame.w * units_per_mm / 2, frame.h * units_per_mm / 2
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def columns_in(rect: Rect, column_width: float, gap: float) -> list[Column]:
    """As many columns of about ``column_width`` as fit side by side in ``rect``."""
    count = max(1, int((rect.w + gap) // (column_width + gap)))
    width = (rect.w - (count - 1) * gap) / count
    return [Column(rect.x + i * (width + gap), rect.y, width, rect.h) for i in range(count)]


def index_items(
    streets: Sequence[StreetEntry],
    facilities: Sequence[tuple[Category, list[Facility]]],
    atlas: Atlas,
) -> list[Item]:
    """The index flow: streets under letter headings, then facilities by category."""
    items: list[Item] = [Item("title", "Index des rues", keep_with_next=True)]
    letter = None
    from cities.collation import heading

    for entry in streets:
        current = heading(entry.name)
        if current != letter:
            if letter is not None:
                items.append(Item("gap"))
            items.append(Item("letter", current, keep_with_next=True))
            letter = current
        items.append(Item("entry", entry.display, atlas.references(entry.cells)))
    if not streets:
        items.append(Item("entry", "Aucune rue nommée"))
    if facilities:
        items.append(Item("gap"))
        items.append(Item("title", "Équipements", keep_with_next=True))
    for category, entries in facilities:
        items.append(Item("category", category.title, icon=category.icon, keep_with_next=True))
        for facility in entries:
            items.append(
                Item("entry", facility.label, atlas.references(facility.cells), icon=facility.icon)
            )
        items.append(Item("gap"))
    return items


@dataclass
class SheetMap:
    """One map frame of the plan: its sheet (None for the overview), extent, image and names."""

    sheet: Sheet | None
    bbox: BBox
    png: bytes
    labels: list[StreetLabel]
    #: The map's dark pixels (its pictograms), where names and pictograms keep off.
    ink: InkMap | None = None
    #: Names of the places on the map (written by the plan, like the street names).
    places: list[StreetLabel] = field(default_factory=list)
    #: Names of stations, facilities and water (placed after, and never over, the others).
    features: list[StreetLabel] = field(default_factory=list)

    @property
    def names(self) -> list[StreetLabel]:
        """Every name written on the map."""
        return [*self.labels, *self.places, *self.features]


@dataclass
class PlanContent:
    """Everything a plan shows, gathered before drawing."""

    title: str
    subtitle: str
    area: BaseGeometry
    masked: bool
    latitude: float
    atlas: Atlas
    #: The map of each sheet, in sheet order.
    maps: list[SheetMap]
    streets: list[StreetEntry]
    facilities: list[tuple[Category, list[Facility]]]
    legend: list[LegendEntry]
    date: str
    data_note: str
    #: The whole area with the sheets outlined (atlases only).
    overview: SheetMap | None = None

    @property
    def grid(self) -> Grid:
        """The grid of the whole plan."""
        return self.atlas.grid


def map_scale(bbox: BBox, frame: Rect, latitude: float) -> float:
    """The N of 1:N of a map of ``bbox`` in ``frame``, rounded as printed."""
    metres_per_mm = (bbox[2] - bbox[0]) / frame.w * math.cos(math.radians(latitude))
    return float(round(metres_per_mm * 1000, -1 if metres_per_mm < 10 else -2))


def french_date(year: int, month: int, day: int) -> str:
    """ "28 novembre 2026" """
    return f"{day} {MONTHS[month - 1]} {year}"


def _project(frame: Rect, bbox: BBox, x: float, y: float) -> tuple[float, float]:
    """Page position (mm) of map point (x, y) in a ``frame`` showing ``bbox``."""
    return (
        frame.x + (x - bbox[0]) / (bbox[2] - bbox[0]) * frame.w,
        frame.y + (bbox[3] - y) / (bbox[3] - bbox[1]) * frame.h,
    )


def _halo_text(ctx: cairo.Context[Any], text: str, x: float, y: float, halo: float) -> None:
    """``text`` centred on (x, y), dark on a white halo (the current font)."""
    e = ctx.text_extents(text)
    start = (x - e.x_bearing - e.width / 2, y - e.y_bearing - e.height / 2)
    ctx.move_to(*start)
    ctx.text_path(text)
    ctx.set_source_rgb(1, 1, 1)
    ctx.set_line_width(halo)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)
    ctx.stroke()
    # Shown as text, not filled as a path: the PDF says what and where it is.
    ctx.move_to(*start)
    ctx.set_source_rgb(*INK)
    ctx.show_text(text)


@dataclass(frozen=True)
class SheetNumber:
    """A sheet's number on the overview: centred on (x, y) mm, ``size`` pt bold, its box."""

    text: str
    x: float
    y: float
    size: float
    box: Polygon


def sheet_numbers(
    frame: Rect, bbox: BBox, sheets: Sequence[tuple[Sheet, BBox]], scale: float
) -> list[SheetNumber]:
    """Where the overview writes each sheet's number: the middle of its outline."""
    measure = Measure()
    numbers = []
    for sheet, b in sheets:
        x0, y0 = _project(frame, bbox, b[0], b[3])
        x1, y1 = _project(frame, bbox, b[2], b[1])
        size = min(28 * scale, (y1 - y0) / PT * 0.5)
        text = str(sheet.number)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w = measure.width(text, size, bold=True) / 2 + 1.2 * scale
        half_h = size * PT * 0.4 + 1.2 * scale
        box = shapely.box(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        numbers.append(SheetNumber(text, cx, cy, size, box))
    return numbers


#: JPEG quality of the map images in PDF plans (street names are vector text on top).
PDF_MAP_QUALITY = 90


def _map_surface(png: bytes, pdf: bool) -> cairo.ImageSurface:
    """The map image to paint; for a PDF, one carrying a JPEG that cairo embeds as it is.

    cairo would deflate the decoded pixels of a PNG, seconds per sheet at 300 dpi, into a file
    several times larger; a JPEG is stored as it comes.
    """
    if not pdf:
        return cairo.ImageSurface.create_from_png(io.BytesIO(png))
    with Image.open(io.BytesIO(png)) as image:
        size = image.size
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=PDF_MAP_QUALITY, subsampling=0)
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, *size)
    surface.set_mime_data(cairo.MIME_TYPE_JPEG, out.getvalue())
    return surface


def icons_of(facility: Facility) -> tuple[str, ...]:
    """The pictogram of each point of ``facility``."""
    return facility.icons or tuple(facility.category.icon for _ in facility.points)


#: Side (mm, on A3) of a facility's pictogram on the map.
ICON_MM = 3.6
#: Share of dark pixels under an icon above which it is taken to hide a label.
LABEL_INK = 0.06


class LabelSpots:
    """Where an icon can go on the map without hiding a name or a pictogram.

    The map image carries no text, only pictograms (dense dark ink on light roads and areas);
    the names are the boxes given. An icon whose disc would cover much of either is moved to
    the nearest clear spot around its place.
    """

    def __init__(self, ink: InkMap, frame: Rect, boxes: Sequence[Polygon] = ()) -> None:
        self.frame = frame
        self.px_per_mm = ink.px_per_mm
        # Summed-area table: the dark pixels of any box in constant time. The boxes of the
        # street names count as ink, so pictograms keep off them too.
        dark = ink.with_boxes(boxes).astype(np.int32)
        self.table = np.pad(dark.cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def ink(self, x: float, y: float, size: float) -> float:
        """Share of dark pixels in the square of side ``size`` mm centred on page point (x, y)."""
        k, f = self.px_per_mm, self.frame
        h, w = self.table.shape[0] - 1, self.table.shape[1] - 1
        x0 = int(max(0, min(w, (x - f.x - size / 2) * k)))
        x1 = int(max(0, min(w, (x - f.x + size / 2) * k)))
        y0 = int(max(0, min(h, (y - f.y - size / 2) * k)))
        y1 = int(max(0, min(h, (y - f.y + size / 2) * k)))
        area = (x1 - x0) * (y1 - y0)
        if area <= 0:
            return 1.0
        t = self.table
        return float(t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]) / area

    def place(
        self, x: float, y: float, size: float, taken: Sequence[tuple[float, float]]
    ) -> tuple[float, float]:
        """Where to draw an icon of ``size`` mm for (x, y): there, or the clearest spot nearby."""

        def free(cx: float, cy: float) -> bool:
            return all(math.hypot(cx - tx, cy - ty) >= size * 0.95 for tx, ty in taken)

        here = self.ink(x, y, size * 0.9)
        if here <= LABEL_INK and free(x, y):
            return x, y
        best = (here + (0 if free(x, y) else 1.0), x, y)
        for ring in (1.0, 1.6, 2.3):
            for step in range(12):
                angle = step * math.pi / 6
                cx = x + math.cos(angle) * size * ring
                cy = y + math.sin(angle) * size * ring
                f = self.frame
                if not (f.x + size / 2 <= cx <= f.x + f.w - size / 2):
                    continue
                if not (f.y + size / 2 <= cy <= f.y + f.h - size / 2):
                    continue
                score = self.ink(cx, cy, size * 1.1) + (0 if free(cx, cy) else 1.0) + ring * 0.01
                if score < best[0]:
                    best = (score, cx, cy)
            if best[0] <= LABEL_INK + 0.03:
                break
        return best[1], best[2]


class PageDrawer:
    """Draws the pages of one plan on a cairo context whose unit is the millimetre."""

    def __init__(
        self, content: PlanContent, geometry: PageGeometry, sheet_geometry: PageGeometry
    ) -> None:
        self.c = content
        self.g = geometry
        #: The page of an atlas's sheets: the map over the whole page, no index panel.
        self.sheet_g = sheet_geometry
        #: Map images painted on the document being drawn.
        self.images: list[cairo.ImageSurface] = []
        self.measure = Measure()
        self._map_surface: cairo.ImageSurface | None = None

    # -- flow ---------------------------------------------------------------------------------

    def paginate(self, layout: Layout) -> list[list[Placed]]:
        """Placed index items per page; page 0 is the map page."""
        g = self.g
        gap = 4 * g.scale
        first = columns_in(g.panel, g.column_width, gap) if g.panel else []
        full = Rect(
            g.margin,
            g.margin + g.title.h,
            g.width - 2 * g.margin,
            g.height - 2 * g.margin - g.title.h - 10 * g.scale,
        )

        def more() -> list[Column]:
            return columns_in(full, g.column_width, gap)

        items = index_items(self.c.streets, self.c.facilities, self.c.atlas)
        pages = flow(items, first, more, self.measure, g.sizes)
        if layout is Layout.INDEX_PAGES and pages and not pages[0]:
            return pages
        return pages

    # -- drawing ------------------------------------------------------------------------------

    def draw_map_page(self, ctx: cairo.Context[Any], placed: list[Placed]) -> None:
        """Page 1: the one sheet's map with the index panel, or an atlas's overview."""
        ctx.set_source_rgb(1, 1, 1)
        ctx.paint()
        overview = self.c.overview
        if overview is None:
            self._title(ctx, self.c.title, self.c.subtitle)
            self._sheet(ctx, self.g, self.c.maps[0])
        else:
            count = len(self.c.maps)
            ratio = self._ratio(self.sheet_g, self.c.maps[0].bbox)
            subtitle = f"{self.c.subtitle} · tableau d'assemblage, {count} feuilles au 1:{ratio}"
            self._title(ctx, self.c.title, subtitle)
            self._map_image(ctx, overview.png, self.g.frame, overview.bbox)
            self._sheet_layout(ctx, overview.bbox)
            draw_labels(ctx, overview.names)
            self._frame_line(ctx, self.g.frame)
        self._items(ctx, placed)
        self._footer(ctx, self.g, (overview or self.c.maps[0]).bbox)

    def draw_sheet_page(self, ctx: cairo.Context[Any], sheet_map: SheetMap) -> None:
        """A numbered sheet of an atlas: its map over the whole page, grid letters running on."""
        ctx.set_source_rgb(1, 1, 1)
        ctx.paint()
        assert sheet_map.sheet is not None
        number, total = sheet_map.sheet.number, len(self.c.maps)
        subtitle = f"{self.c.subtitle} · feuille {number} sur {total} · index en fin de plan"
        self._title(ctx, f"{self.c.title} — feuille {number}", subtitle)
        self._sheet(ctx, self.sheet_g, sheet_map)
        self._footer(ctx, self.sheet_g, sheet_map.bbox)

    def draw_index_page(
        self, ctx: cairo.Context[Any], placed: list[Placed], number: int, total: int
    ) -> None:
        """A page of index columns with the title and the attribution."""
        ctx.set_source_rgb(1, 1, 1)
        ctx.paint()
        self._title(ctx, self.c.title, f"Index (suite) — page {number}/{total}")
        self._items(ctx, placed)
        g = self.g
        set_font(ctx, g.sizes.body)
        ctx.set_source_rgb(*INK)
        ctx.move_to(g.margin, g.height - g.margin)
        ctx.show_text(f"{ATTRIBUTION} — {self.c.date}")

    def _title(self, ctx: cairo.Context[Any], title: str, subtitle: str) -> None:
        g = self.g
        ctx.set_source_rgb(*INK)
        size = 20 * g.scale
        set_font(ctx, size, bold=True)
        ctx.move_to(g.title.x, g.title.y + size * PT)
        ctx.show_text(title)
        set_font(ctx, 9 * g.scale)
        ctx.move_to(g.title.x, g.title.y + size * PT + 9 * g.scale * PT * 1.5)
        ctx.show_text(subtitle)
        ctx.set_line_width(0.5 * g.scale)
        ctx.move_to(g.title.x, g.title.y + g.title.h - 2 * g.scale)
        ctx.line_to(g.title.x + g.title.w, g.title.y + g.title.h - 2 * g.scale)
        ctx.stroke()

    def _area_path(self, ctx: cairo.Context[Any], frame: Rect, bbox: BBox) -> None:
        units_per_mm = (bbox[2] - bbox[0]) / frame.w
        simple = self.c.area.simplify(units_per_mm * 0.1)
        for part in getattr(simple, "geoms", [simple]):
            if part.geom_type != "Polygon":
                continue
            for ring in [part.exterior, *part.interiors]:
                coords = shapely.get_coordinates(ring)
                for i, (x, y) in enumerate(coords):
                    px, py = _project(frame, bbox, x, y)
                    if i == 0:
                        ctx.move_to(px, py)
                    else:
                        ctx.line_to(px, py)
                ctx.close_path()

    def _map_image(self, ctx: cairo.Context[Any], png: bytes, frame: Rect, bbox: BBox) -> None:
        """The rendered map in ``frame``, the surroundings of the area faded and outlined."""
        f = frame
        image = _map_surface(png, isinstance(ctx.get_target(), cairo.PDFSurface))
        # cairo reads a JPEG's bytes when the PDF is finished: keep its surface alive till then.
        self.images.append(image)
        ctx.save()
        ctx.rectangle(f.x, f.y, f.w, f.h)
        ctx.clip()
        ctx.save()
        ctx.translate(f.x, f.y)
        ctx.scale(f.w / image.get_width(), f.h / image.get_height())
        ctx.set_source_surface(image, 0, 0)
        ctx.get_source().set_filter(cairo.FILTER_GOOD)
        ctx.paint()
        ctx.restore()
        if self.c.masked:
            scale = self.g.scale
            ctx.rectangle(f.x, f.y, f.w, f.h)
            self._area_path(ctx, f, bbox)
            ctx.set_fill_rule(cairo.FILL_RULE_EVEN_ODD)
            ctx.set_source_rgba(1, 1, 1, 0.62)
            ctx.fill()
            self._area_path(ctx, f, bbox)
            ctx.set_source_rgba(*BOUNDARY, 0.85)
            ctx.set_line_width(0.8 * scale)
            ctx.set_dash([3 * scale, 1.2 * scale])
            ctx.stroke()
            ctx.set_dash([])
        ctx.restore()

    def _sheet(self, ctx: cairo.Context[Any], g: PageGeometry, sheet_map: SheetMap) -> None:
        """The map of one sheet: image, grid, pictograms, street names, frame."""
        f = g.frame
        self._map_image(ctx, sheet_map.png, f, sheet_map.bbox)
        ctx.save()
        ctx.rectangle(f.x, f.y, f.w, f.h)
        ctx.clip()
        self._grid_lines(ctx, g, sheet_map)
        self._icons(ctx, g, sheet_map)
        draw_labels(ctx, sheet_map.names)
        ctx.restore()
        self._frame_line(ctx, f)
        self._grid_labels(ctx, g, sheet_map)

    def _sheet_layout(self, ctx: cairo.Context[Any], bbox: BBox) -> None:
        """The sheets of an atlas outlined on the overview, each with its number."""
        f, s = self.g.frame, self.g.scale
        ctx.save()
        ctx.rectangle(f.x, f.y, f.w, f.h)
        ctx.clip()
        for sheet_map in self.c.maps:
            b = sheet_map.bbox
            x0, y0 = _project(f, bbox, b[0], b[3])
            x1, y1 = _project(f, bbox, b[2], b[1])
            ctx.rectangle(x0, y0, x1 - x0, y1 - y0)
            ctx.set_source_rgba(0.1, 0.2, 0.55, 0.9)
            ctx.set_line_width(0.7 * s)
            ctx.stroke()
        sheets = [(m.sheet, m.bbox) for m in self.c.maps if m.sheet is not None]
        for number in sheet_numbers(f, bbox, sheets, s):
            set_font(ctx, number.size, bold=True)
            _halo_text(ctx, number.text, number.x, number.y, 1.2 * s)
        ctx.restore()

    @staticmethod
    def _frame_line(ctx: cairo.Context[Any], f: Rect) -> None:
        ctx.set_source_rgb(*INK)
        ctx.set_line_width(0.6)
        ctx.rectangle(f.x, f.y, f.w, f.h)
        ctx.stroke()

    def _icons(self, ctx: cairo.Context[Any], g: PageGeometry, sheet_map: SheetMap) -> None:
        size = ICON_MM * g.scale
        assert sheet_map.ink is not None
        spots = LabelSpots(sheet_map.ink, g.frame, [label.box for label in sheet_map.names])
        drawn: list[tuple[float, float]] = []
        b = sheet_map.bbox
        for _category, entries in self.c.facilities:
            # One icon stands for the neighbours of its category it would cover (bus stops of
            # both sides of a street, buildings of one school); the index lists them all.
            mine: list[tuple[float, float]] = []
            for facility in entries:
                for (x, y), icon in zip(facility.points, icons_of(facility), strict=True):
                    if not (b[0] <= x <= b[2] and b[1] <= y <= b[3]):
                        continue
                    px, py = _project(g.frame, b, x, y)
                    if any(math.hypot(px - qx, py - qy) < size * 0.8 for qx, qy in mine):
                        continue
                    mine.append((px, py))
                    ix, iy = spots.place(px, py, size, drawn)
                    drawn.append((ix, iy))
                    if (ix, iy) != (px, py):
                        # Moved off a label: a thin leader to the true place.
                        ctx.move_to(px, py)
                        ctx.line_to(ix, iy)
                        ctx.set_source_rgb(*INK)
                        ctx.set_line_width(0.25 * g.scale)
                        ctx.stroke()
                        ctx.arc(px, py, 0.45 * g.scale, 0, 2 * math.pi)
                        ctx.fill()
                    draw_icon(ctx, icon, ix, iy, size)

    def _cells(self, g: PageGeometry, sheet_map: SheetMap) -> tuple[Sheet, float, float]:
        sheet = sheet_map.sheet
        assert sheet is not None
        return sheet, g.frame.w / sheet.cols, g.frame.h / sheet.rows

    def _grid_lines(self, ctx: cairo.Context[Any], g: PageGeometry, sheet_map: SheetMap) -> None:
        f, s = g.frame, g.scale
        sheet, cw, ch = self._cells(g, sheet_map)
        ctx.set_source_rgba(0.15, 0.15, 0.3, 0.75)
        ctx.set_line_width(0.25 * s)
        for i in range(1, sheet.cols):
            ctx.move_to(f.x + i * cw, f.y)
            ctx.line_to(f.x + i * cw, f.y + f.h)
        for j in range(1, sheet.rows):
            ctx.move_to(f.x, f.y + j * ch)
            ctx.line_to(f.x + f.w, f.y + j * ch)
        ctx.stroke()

    def _grid_labels(self, ctx: cairo.Context[Any], g: PageGeometry, sheet_map: SheetMap) -> None:
        """Column letters and row numbers in a grey band around the frame (they run on)."""
        f, s = g.frame, g.scale
        sheet, cw, ch = self._cells(g, sheet_map)
        band = g.label_band
        # Margin band in light grey so the references read as page furniture, not map text.
        ctx.set_source_rgb(0.92, 0.92, 0.92)
        ctx.rectangle(f.x - band, f.y - band, f.w + 2 * band, f.h + 2 * band)
        ctx.rectangle(f.x, f.y, f.w, f.h)
        ctx.set_fill_rule(cairo.FILL_RULE_EVEN_ODD)
        ctx.fill()
        ctx.set_fill_rule(cairo.FILL_RULE_WINDING)
        ctx.set_source_rgb(*INK)
        set_font(ctx, 8 * s, bold=True)

        def centred(text: str, x: float, y: float) -> None:
            e = ctx.text_extents(text)
            ctx.move_to(x - e.x_bearing - e.width / 2, y - e.y_bearing - e.height / 2)
            ctx.show_text(text)

        for i in range(sheet.cols):
            label = column_label(sheet.col0 + i)
            centred(label, f.x + (i + 0.5) * cw, f.y - band / 2)
            centred(label, f.x + (i + 0.5) * cw, f.y + f.h + band / 2)
        for j in range(sheet.rows):
            centred(str(sheet.row0 + j + 1), f.x - band / 2, f.y + (j + 0.5) * ch)
            centred(str(sheet.row0 + j + 1), f.x + f.w + band / 2, f.y + (j + 0.5) * ch)

    def _ratio(self, g: PageGeometry, bbox: BBox) -> str:
        ratio = map_scale(bbox, g.frame, self.c.latitude)
        return f"{ratio:,.0f}".replace(",", "\u202f")

    def _items(self, ctx: cairo.Context[Any], placed: list[Placed]) -> None:
        sizes = self.g.sizes
        line = sizes.line
        ctx.set_source_rgb(*INK)
        for p in placed:
            item = p.item
            if item.kind == "title":
                set_font(ctx, sizes.title, bold=True)
                for k, text in enumerate(item.name_lines):
                    ctx.move_to(p.x, p.y + (k + 0.85) * sizes.title * PT * 1.3)
                    ctx.show_text(text)
            elif item.kind == "letter":
                h = item.height * 0.85
                ctx.set_source_rgb(0.88, 0.88, 0.9)
                ctx.rectangle(p.x, p.y + item.height * 0.1, p.width, h)
                ctx.fill()
                ctx.set_source_rgb(*INK)
                set_font(ctx, sizes.letter, bold=True)
                ctx.move_to(p.x + line * 0.3, p.y + item.height * 0.1 + h * 0.78)
                ctx.show_text(item.text)
            elif item.kind == "category" and item.icon:
                radius = line * 0.5
                draw_icon(ctx, item.icon, p.x + radius, p.y + line * 0.6, radius * 2)
                ctx.set_source_rgb(*INK)
                set_font(ctx, sizes.body * 1.1, bold=True)
                for k, text in enumerate(item.name_lines):
                    ctx.move_to(p.x + line * 1.2, p.y + (k + 0.85) * line * 1.15)
                    ctx.show_text(text)
            elif item.kind == "entry":
                indent = 0.0
                if item.icon:
                    indent = line * 1.1
                    draw_icon(ctx, item.icon, p.x + line * 0.45, p.y + line * 0.5, line * 0.9)
                    ctx.set_source_rgb(*INK)
                set_font(ctx, sizes.body)
                for k, text in enumerate(item.name_lines):
                    ctx.move_to(p.x + indent, p.y + (k + 0.8) * line)
                    ctx.show_text(text)
                set_font(ctx, sizes.body, bold=True)
                first = (
                    0
                    if len(item.cell_lines) == 1
                    and item.height <= len(item.name_lines) * line + 1e-6
                    else len(item.name_lines)
                )
                for k, text in enumerate(item.cell_lines):
                    width = ctx.text_extents(text).x_advance
                    ctx.move_to(p.x + p.width - width, p.y + (first + k + 0.8) * line)
                    ctx.show_text(text)

    def _footer(self, ctx: cairo.Context[Any], g: PageGeometry, bbox: BBox) -> None:
        s = g.scale
        f = g.footer
        ctx.set_source_rgb(*INK)
        ctx.set_line_width(0.4 * s)
        ctx.move_to(f.x, f.y)
        ctx.line_to(f.x + f.w, f.y)
        ctx.stroke()
        # North arrow.
        ax, ay, ah = f.x + 5 * s, f.y + 3 * s, 11 * s
        ctx.move_to(ax, ay + 3 * s)
        ctx.line_to(ax + 3 * s, ay + ah)
        ctx.line_to(ax, ay + ah - 2.5 * s)
        ctx.close_path()
        ctx.fill()
        ctx.move_to(ax, ay + 3 * s)
        ctx.line_to(ax - 3 * s, ay + ah)
        ctx.line_to(ax, ay + ah - 2.5 * s)
        ctx.close_path()
        ctx.stroke()
        set_font(ctx, 8 * s, bold=True)
        e = ctx.text_extents("N")
        ctx.move_to(ax - e.width / 2 - e.x_bearing, ay + 2.2 * s)
        ctx.show_text("N")
        # Scale bar: ground metres per paper mm at the plan's latitude.
        metres_per_mm = map_scale(bbox, g.frame, self.c.latitude) / 1000
        target = 40 * s * metres_per_mm
        power = 10 ** math.floor(math.log10(target))
        nice = max(m * power for m in (1, 2, 2.5, 5, 10) if m * power <= target)
        bar = nice / metres_per_mm
        bx, by = f.x + 14 * s, f.y + 9 * s
        for k in range(4):
            ctx.rectangle(bx + k * bar / 4, by, bar / 4, 1.6 * s)
            if k % 2 == 0:
                ctx.fill_preserve()
            ctx.stroke()
        set_font(ctx, 7 * s)
        unit = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice:g} m"
        for text, x in (("0", bx), (unit, bx + bar)):
            e = ctx.text_extents(text)
            ctx.move_to(x - e.x_advance / 2, by - 1.2 * s)
            ctx.show_text(text)
        ctx.move_to(bx, by + 5.5 * s)
        ctx.show_text(f"Échelle 1:{self._ratio(g, bbox)}")
        # Attribution and date, right-aligned; the legend takes the room left between.
        set_font(ctx, 7.5 * s)
        lines = [ATTRIBUTION, self.c.data_note, f"Édité le {self.c.date}"]
        right_w = max(self.measure.width(t, 7.5 * s) for t in lines) + 4 * s
        for k, text in enumerate(lines):
            if not text:
                continue
            e = ctx.text_extents(text)
            ctx.move_to(f.x + f.w - e.x_advance, f.y + (k + 1.4) * 7.5 * s * PT * 1.5)
            ctx.show_text(text)
        left = bx + max(bar, 30 * s) + 8 * s
        self._legend(ctx, Rect(left, f.y + 1.5 * s, f.x + f.w - right_w - left, f.h - 2 * s), s)

    def _legend(self, ctx: cairo.Context[Any], rect: Rect, s: float) -> None:
        """The legend in ``rect``: as many columns as fit whole labels, smaller type if needed."""
        entries = list(self.c.legend)
        if self.c.masked:
            entries.append(
                LegendEntry("Limite de la commune", "line", BOUNDARY, 0.8, dash=(3.75, 1.5))
            )
        entries += [
            LegendEntry(category.title, "icon", INK, icon=category.icon)
            for category, _ in self.c.facilities
        ]
        if not entries or rect.w <= 10 * s:
            return
        size, swatch = 6.5 * s, 7 * s
        while True:
            line = size * PT * 1.45
            rows = max(1, int(rect.h // line))
            widest = max(self.measure.width(e.label, size) for e in entries)
            col_w = swatch + 1.5 * s + widest + 2.5 * s
            cols = max(1, int((rect.w + 2.5 * s) // col_w))
            if cols * rows >= len(entries) or size <= 4.0:
                break
            size -= 0.25
        rows = math.ceil(len(entries) / cols)
        for n, entry in enumerate(entries):
            col, row = divmod(n, rows)
            x, y = rect.x + col * col_w, rect.y + row * line
            mid = y + line * 0.5
            if entry.type == "icon":
                draw_icon(ctx, entry.icon, x + swatch / 2, mid, line * 0.85)
            elif entry.type == "fill":
                ctx.rectangle(x, y + line * 0.18, swatch, line * 0.64)
                ctx.set_source_rgb(*entry.colour)
                ctx.fill_preserve()
                ctx.set_source_rgb(*(entry.casing or (0.55, 0.55, 0.55)))
                ctx.set_line_width(0.2 * s)
                ctx.stroke()
            else:
                width = min(entry.width * s, line * 0.6)
                ctx.set_line_cap(cairo.LINE_CAP_BUTT)
                if entry.casing is not None:
                    self._swatch_line(ctx, x, mid, swatch, width + 0.5 * s, entry.casing, ())
                dash = tuple(d * max(width, 0.4 * s) for d in entry.dash)
                self._swatch_line(ctx, x, mid, swatch, width, entry.colour, dash)
                if entry.overlay is not None:
                    overlay_dash = (width * 2, width * 2)
                    self._swatch_line(ctx, x, mid, swatch, width * 0.5, entry.overlay, overlay_dash)
            ctx.set_source_rgb(*INK)
            set_font(ctx, size)
            ctx.move_to(x + swatch + 1.5 * s, y + line * 0.72)
            ctx.show_text(entry.label)

    @staticmethod
    def _swatch_line(
        ctx: cairo.Context[Any],
        x: float,
        y: float,
        length: float,
        width: float,
        colour: tuple[float, float, float],
        dash: tuple[float, ...],
    ) -> None:
        ctx.move_to(x, y)
        ctx.line_to(x + length, y)
        ctx.set_source_rgb(*colour)
        ctx.set_line_width(width)
        ctx.set_dash(list(dash))
        ctx.stroke()
        ctx.set_dash([])

"""Making a town plan: gather the area's streets and facilities, render the map, lay out pages."""

from __future__ import annotations

import datetime as dt
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cairo
import numpy as np
import psycopg2
import psycopg2.extensions
import shapely
from shapely.geometry.base import BaseGeometry

from cities.communes import Commune, commune_geometry
from cities.db import meta_value
from cities.errors import CitiesError, EmptyArea
from cities.facilities import Category, Facility, facilities_index
from cities.flow import Placed
from cities.grid import Cell, Grid
from cities.labels import (
    POI,
    WATER,
    AreaTarget,
    InkMap,
    LabelTarget,
    Placer,
    PointTarget,
    StreetLabel,
)
from cities.layout import (
    ATTRIBUTION,
    ICON_MM,
    MAX_MAP_PIXELS,
    PageDrawer,
    PageGeometry,
    PlanContent,
    Rect,
    SheetMap,
    frame_bbox,
    french_date,
    icons_of,
    map_scale,
    page_geometry,
    sheet_numbers,
)
from cities.paper import (
    DEFAULT_PAPER,
    Layout,
    Orientation,
    page_size_mm,
    parse_layout,
    parse_orientation,
    parse_paper,
)
from cities.render import MapRenderer
from cities.sheets import (
    ATLAS_SCALE,
    MAX_SHEET_SCALE,
    Atlas,
    Sheet,
    atlas_grid,
    atlas_of,
    fit_units,
    scale_of,
    single_sheet,
    units_per_mm,
)
from cities.streets import Place, StreetEntry, read_places, street_index
from cities.style import NO_TEXT, PRINT_STYLE, RGB, legend_entries, load_style, text_colour
from cities.water import WaterName, read_water
from osmimport import mercator
from osmimport.children import lower_backend_priority
from osmimport.database import connect
from osmimport.dataversion import read_data_version

MM_PER_INCH = 25.4
FORMATS = ("pdf", "png")


@dataclass(frozen=True)
class PlanOptions:
    """How a plan is printed."""

    paper: str = DEFAULT_PAPER
    orientation: Orientation = Orientation.BEST
    layout: Layout = Layout.INDEX_SIDE
    format: str = "pdf"
    dpi: int = 300
    style: str = PRINT_STYLE
    title: str | None = None

    def __post_init__(self) -> None:
        # Plain strings are accepted (e.g. "index-side") and checked like CLI arguments.
        object.__setattr__(self, "paper", parse_paper(self.paper))
        object.__setattr__(self, "orientation", parse_orientation(str(self.orientation)))
        object.__setattr__(self, "layout", parse_layout(str(self.layout)))
        if self.format not in FORMATS:
            raise CitiesError(f"unknown format {self.format!r}; use pdf or png")
        if not 72 <= self.dpi <= 600:
            raise CitiesError("dpi must be between 72 and 600")

    @property
    def cache_key(self) -> str:
        """The options as a stable string (for caches)."""
        return (
            f"{self.paper}-{self.orientation.value}-{self.layout.value}-{self.dpi}-"
            f"{self.style}-{self.title or ''}.{self.format}"
        )


@dataclass(frozen=True)
class PlanArea:
    """What a plan covers: a commune (masked to its boundary) or a box."""

    title: str
    subtitle: str
    geometry: BaseGeometry
    latitude: float
    masked: bool
    slug: str


def _connect(database_url: str, backend_nice: int) -> psycopg2.extensions.connection:
    """A connection whose backend is ``backend_nice`` nicer (see lower_backend_priority): a
    plan drawn in the server yields the CPU to its answers, its queries included."""
    conn = connect(database_url)
    if backend_nice > 0:
        try:
            lower_backend_priority(conn, backend_nice)
        except psycopg2.Error:
            # The connection's first query will meet the same fault and report it.
            pass
    return conn


def commune_area(database_url: str, commune: Commune, *, backend_nice: int = 0) -> PlanArea:
    """The plan area of a commune (``backend_nice``: see :func:`make_plan`)."""
    conn = _connect(database_url, backend_nice)
    try:
        geometry = commune_geometry(conn, commune)
    finally:
        conn.close()
    details = ["Plan de ville"]
    if commune.country:
        details.append(commune.country)
    if commune.insee:
        details.append(f"INSEE {commune.insee}")
    return PlanArea(
        commune.label, " · ".join(details), geometry, commune.latitude, True, commune.slug
    )


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``W,S,E,N`` in degrees, checked."""
    west, south, east, north = mercator.parse_bbox(text, "--bbox", max_lat=85.0)
    if (east - west) > 2 or (north - south) > 2:
        raise CitiesError("--bbox is larger than 2 degrees: that is not a town plan")
    return west, south, east, north


def bbox_area(bbox: tuple[float, float, float, float], title: str | None) -> PlanArea:
    """The plan area of a W,S,E,N box in degrees."""
    west, south, east, north = bbox
    x0, y0 = mercator.lonlat_to_mercator(west, south)
    x1, y1 = mercator.lonlat_to_mercator(east, north)
    name = title or f"Plan {west:.4f},{south:.4f},{east:.4f},{north:.4f}"
    slug = "plan-" + "_".join(f"{v:.3f}" for v in bbox)
    return PlanArea(
        name, "Plan de ville", shapely.box(x0, y0, x1, y1), (south + north) / 2, False, slug
    )


@dataclass
class Plan:
    """A made plan: the document (one PDF, or one PNG per page) and what is on it."""

    format: str
    documents: list[bytes]
    page_count: int
    atlas: Atlas
    streets: list[StreetEntry]
    facilities: list[tuple[Category, list[Facility]]]
    data_version: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Resolution the map body was drawn at (below the asked DPI only on the largest papers).
    map_dpi: float = 0.0
    #: Scale of the sheets: ground distance per paper distance (the N of "1:N").
    scale: float = 0.0
    #: Per sheet: its page number (from 1), map frame on the page (mm), extent and names drawn.
    sheet_pages: list[tuple[int, Rect, SheetMap]] = field(default_factory=list)
    #: Index streets no name could be placed for (on no sheet).
    unnamed: list[str] = field(default_factory=list)
    #: An atlas's overview (on page 1): its map frame (mm) and map.
    overview: tuple[Rect, SheetMap] | None = None

    @property
    def grid(self) -> Grid:
        """The grid of the whole plan (continuing across the sheets of an atlas)."""
        return self.atlas.grid

    @property
    def label_count(self) -> int:
        """Street names drawn on the map, over all sheets."""
        return sum(len(m.labels) for _, _, m in self.sheet_pages)

    @property
    def place_count(self) -> int:
        """Place names drawn on the maps (sheets and overview)."""
        on_overview = len(self.overview[1].places) if self.overview else 0
        return sum(len(m.places) for _, _, m in self.sheet_pages) + on_overview

    def _feature_count(self, kind: str) -> int:
        maps = [m for _, _, m in self.sheet_pages] + ([self.overview[1]] if self.overview else [])
        return sum(1 for m in maps for label in m.features if label.kind == kind)

    @property
    def water_count(self) -> int:
        """Names of rivers and lakes drawn on the maps (sheets and overview)."""
        return self._feature_count(WATER)

    @property
    def poi_count(self) -> int:
        """Names of stations and other facilities drawn on the sheets."""
        return self._feature_count(POI)

    @property
    def media_type(self) -> str:
        """The document's MIME type."""
        return "application/pdf" if self.format == "pdf" else "image/png"


def _data_note(database_url: str, backend_nice: int) -> tuple[str, str]:
    conn = _connect(database_url, backend_nice)
    try:
        version = read_data_version(conn)
        imported = meta_value(conn, "imported_at")
    finally:
        conn.close()
    note = f"Données importées le {str(imported)[:10]}" if imported else ""
    return version, note


#: Size (pt) of the street names on the map, on A3.
LABEL_PT = 6.2
#: Sheet maps asked of the renderer at once.
RENDERS_AT_ONCE = 2


def make_plan(
    database_url: str,
    area: PlanArea,
    options: PlanOptions,
    renderer: MapRenderer,
    *,
    backend_nice: int = 0,
) -> Plan:
    """Draw the plan of ``area``: PDF (all pages in one document) or PNG (one per page).

    The area is drawn on one sheet when it reads at 1:MAX_SHEET_SCALE or closer; otherwise
    the plan is an atlas: an overview page, then numbered sheets at 1:ATLAS_SCALE whose grid
    runs on from sheet to sheet, then the index. The database backends of its queries are
    made ``backend_nice`` nicer.
    """
    style = load_style(options.style)
    bounds = area.geometry.bounds
    ratio = (bounds[2] - bounds[0]) / max(bounds[3] - bounds[1], 1.0)
    width, height = page_size_mm(options.paper, options.orientation, ratio)
    geometry = page_geometry(width, height, options.layout)
    fit = scale_of(fit_units(bounds, geometry.frame.w, geometry.frame.h), area.latitude)
    conn = _connect(database_url, backend_nice)
    try:
        if fit <= MAX_SHEET_SCALE:
            sheet_geometry = geometry
            atlas = single_sheet(bounds, geometry.frame.w, geometry.frame.h)
        else:
            sheet_geometry = page_geometry(width, height, Layout.INDEX_PAGES)
            f = sheet_geometry.frame
            grid = atlas_grid(bounds, f.w, f.h, units_per_mm(ATLAS_SCALE, area.latitude))
            needed = _needed_cells(conn, area, grid)
            atlas = atlas_of(grid, needed, f.w, f.h)
        streets = street_index(conn, area.geometry, atlas.grid, latitude=area.latitude)
        facilities = facilities_index(conn, area.geometry, atlas.grid)
        places = read_places(conn, area.geometry)
        sheet_boxes = [shapely.box(*atlas.sheet_bbox(sheet)) for sheet in atlas.sheets]
        water = read_water(conn, shapely.box(*shapely.union_all(sheet_boxes).bounds))
    finally:
        conn.close()
    if not streets and not facilities and not area.masked:
        raise EmptyArea(
            "no street and no facility of the loaded data in this box; is it inside the import?"
        )
    version, note = _data_note(database_url, backend_nice)

    frame = sheet_geometry.frame
    map_dpi = float(options.dpi)
    pixels = (frame.w / MM_PER_INCH * map_dpi) * (frame.h / MM_PER_INCH * map_dpi)
    warnings: list[str] = []
    if pixels > MAX_MAP_PIXELS:
        map_dpi *= math.sqrt(MAX_MAP_PIXELS / pixels)
    if map_dpi < options.dpi:
        warnings.append(f"map drawn at {map_dpi:.0f} dpi to bound memory")
    label_pt = LABEL_PT * min(1.3, max(1.0, sheet_geometry.scale))
    inks = _Inks(text_colour(style, WATER_LAYER, WATER_INK), text_colour(style, POI_LAYER, POI_INK))
    maps: list[SheetMap] = []
    named: set[int] = set()
    # Sheets are drawn two at a time (the renderer queues what it cannot draw at once); names
    # are placed on each as it comes.
    whole = frame_bbox(bounds, geometry.frame)
    plain_style = options.style + NO_TEXT
    with ThreadPoolExecutor(max_workers=RENDERS_AT_ONCE) as drawing:
        overview_png = (
            drawing.submit(
                _render, renderer, plain_style, whole, geometry.frame, min(map_dpi, 150.0)
            )
            if atlas.is_atlas
            else None
        )
        pngs = drawing.map(
            lambda b: _render(renderer, plain_style, b, frame, map_dpi),
            [atlas.sheet_bbox(sheet) for sheet in atlas.sheets],
        )
        sheet_pngs = list(zip(atlas.sheets, pngs, strict=True))
    for sheet, png in sheet_pngs:
        bbox = atlas.sheet_bbox(sheet)
        ink = InkMap(png, frame.x, frame.y, frame.w)
        placer = Placer(ink, _inner(frame), label_pt)
        # Towns, villages and suburbs are named first, then the streets, then small places.
        targets = _place_targets(places, bbox, frame, label_pt / LABEL_PT)
        names = placer.place_points([t for t in targets if t.bold])
        placer.place(_street_targets(streets, atlas, sheet, bbox, frame))
        names += placer.place_points([t for t in targets if not t.bold])
        features = _features(placer, facilities, water, bbox, frame, label_pt,
                             ICON_MM * sheet_geometry.scale, inks)  # fmt: skip
        named.update(label.key for label in placer.labels)
        maps.append(SheetMap(sheet, bbox, png, placer.labels, ink, names, features))
    overview: SheetMap | None = None
    if overview_png is not None:
        rivers = [w for w in water if w.kind in OVERVIEW_WATER]
        overview = _overview(overview_png.result(), whole, geometry, maps, places, rivers, inks)
    unnamed = [entry.display for i, entry in enumerate(streets) if i not in named]
    if unnamed:
        warnings.append(f"{len(unnamed)} streets could not be named on the map")
    today = dt.date.today()
    content = PlanContent(
        title=options.title or area.title,
        subtitle=area.subtitle,
        area=area.geometry,
        masked=area.masked,
        latitude=area.latitude,
        atlas=atlas,
        maps=maps,
        streets=streets,
        facilities=facilities,
        legend=legend_entries(style),
        date=french_date(today.year, today.month, today.day),
        data_note=note,
        overview=overview,
    )
    drawer = PageDrawer(content, geometry, sheet_geometry)
    pages = drawer.paginate(options.layout)
    documents = _draw(drawer, pages, options, width, height, map_dpi)
    first_sheet_page = 2 if atlas.is_atlas else 1
    return Plan(
        options.format,
        documents,
        len(pages) + (len(maps) if atlas.is_atlas else 0),
        atlas,
        streets,
        facilities,
        version,
        warnings,
        map_dpi,
        map_scale(maps[0].bbox, frame, area.latitude),
        [(first_sheet_page + k, frame, m) for k, m in enumerate(maps)],
        unnamed,
        None if overview is None else (geometry.frame, overview),
    )


def _needed_cells(conn: Any, area: PlanArea, grid: Grid) -> list[Cell]:
    """Cells of ``grid`` with an indexed street or facility: the ones the sheets must print."""
    cells: set[Cell] = set()
    for entry in street_index(conn, area.geometry, grid, latitude=area.latitude):
        cells.update(entry.cells)
    for _, entries in facilities_index(conn, area.geometry, grid):
        for facility in entries:
            cells.update(facility.cells)
    return sorted(cells, key=lambda c: (c.col, c.row))


def _to_page(frame: Rect, bbox: tuple[float, float, float, float]) -> Any:
    """A function mapping EPSG:3857 coordinate arrays to page millimetres in ``frame``."""
    sx = frame.w / (bbox[2] - bbox[0])
    sy = frame.h / (bbox[3] - bbox[1])

    def transform(coords: Any) -> Any:
        out = coords.copy()
        out[:, 0] = frame.x + (coords[:, 0] - bbox[0]) * sx
        out[:, 1] = frame.y + (bbox[3] - coords[:, 1]) * sy
        return out

    return transform


def _street_targets(
    streets: list[StreetEntry],
    atlas: Atlas,
    sheet: Sheet,
    bbox: tuple[float, float, float, float],
    frame: Rect,
) -> list[LabelTarget]:
    """The streets to name on one sheet, each in the cells its index entry gives."""
    transform = _to_page(frame, bbox)
    inner = _inner(frame)
    view = shapely.box(*bbox)
    targets: list[LabelTarget] = []
    for key, entry in enumerate(streets):
        cells = [cell for cell in entry.cells if atlas.sheet_of(cell) == sheet]
        if not cells:
            continue
        piece = shapely.transform(entry.geometry.intersection(view), transform)
        line = shapely.line_merge(shapely.intersection(_lines(piece), inner))
        if line.is_empty and piece.is_empty:
            continue
        if line.is_empty:
            # A street that only touches the sheet's cells (at their edge, or in the frame's
            # margin): named beside the point where it does.
            point = piece.representative_point()
            line = shapely.LineString([(point.x - 0.1, point.y), (point.x + 0.1, point.y)])
        boxes = [shapely.box(*atlas.grid.cell_box(cell)) for cell in cells]
        cover = shapely.transform(shapely.union_all(boxes), transform)
        # Kept a little inside the cells, so a name never starts on a cell's edge.
        allowed = shapely.intersection(cover.buffer(-0.3, join_style="mitre"), inner)
        targets.append(LabelTarget(key, entry.name, line, allowed))
    return targets


def _inner(frame: Rect) -> Any:
    """Where names may stand in ``frame``: half a millimetre inside its line."""
    return shapely.box(frame.x + 0.5, frame.y + 0.5, frame.x + frame.w - 0.5,
                       frame.y + frame.h - 0.5)  # fmt: skip


#: Size (pt, on A3) and weight of place names by kind; kinds not listed are named small.
PLACE_TYPE: dict[str, tuple[float, bool]] = {
    "city": (12.0, True),
    "capital": (12.0, True),
    "state_capital": (12.0, True),
    "town": (11.0, True),
    "village": (9.5, True),
    "suburb": (8.5, True),
    "quarter": (8.0, False),
    "neighbourhood": (7.5, False),
}
#: Size (pt, on A3) of the names of hamlets, localities and other small places.
SMALL_PLACE_PT = 7.0


def _place_targets(
    places: list[Place], bbox: tuple[float, float, float, float], frame: Rect, scale: float
) -> list[PointTarget]:
    """The places inside ``bbox`` to name in ``frame``, the most important first."""
    targets = []
    for place in places:
        if not (bbox[0] <= place.x <= bbox[2] and bbox[1] <= place.y <= bbox[3]):
            continue
        size, bold = PLACE_TYPE.get(place.kind, (SMALL_PLACE_PT, False))
        x, y = _to_page(frame, bbox)(np.array([[place.x, place.y]]))[0]
        targets.append(PointTarget(place.name, float(x), float(y), size * scale, bold))
    targets.sort(key=lambda t: -t.size)
    return targets


#: Layers of the style whose text colour the plan's names of water and of facilities take, and
#: the colours used when the style has no such layer.
WATER_LAYER, WATER_INK = "label-water-line", (0.11, 0.25, 0.4)
POI_LAYER, POI_INK = "poi", (0.25, 0.25, 0.25)
#: Facilities named first (by their pictogram): stations, then town halls, hospitals, museums,
#: schools, churches; pictograms not listed come after those, doctors and dentists last.
POI_ORDER = {"rail": 0, "townhall": 1, "hospital": 2, "museum": 2, "school": 3, "college": 3,
             "worship": 4, "doctor": 9, "dentist": 9}  # fmt: skip
#: Water named on an atlas's overview too: its rivers and canals.
OVERVIEW_WATER = ("river", "canal")
#: Size of facility and water names relative to the street names.
POI_SIZE, WATER_SIZE = 0.85, 1.05


@dataclass(frozen=True)
class _Inks:
    water: RGB
    poi: RGB


def _features(
    placer: Placer,
    facilities: list[tuple[Category, list[Facility]]],
    water: list[WaterName],
    bbox: tuple[float, float, float, float],
    frame: Rect,
    label_pt: float,
    icon_mm: float,
    inks: _Inks,
) -> list[StreetLabel]:
    """Names of stations, facilities, rivers and lakes on one sheet, placed after the streets
    and places (so they never take a spot from those), each clear of the facilities' pictograms."""
    transform = _to_page(frame, bbox)
    points: list[tuple[int, str, float, float]] = []
    for category, entries in facilities:
        unnamed = set(category.members.values())
        for facility in entries:
            for (x, y), icon in zip(facility.points, icons_of(facility), strict=True):
                if not (bbox[0] <= x <= bbox[2] and bbox[1] <= y <= bbox[3]):
                    continue
                px, py = transform(np.array([[x, y]]))[0]
                placer.block(shapely.box(px - icon_mm / 2, py - icon_mm / 2, px + icon_mm / 2,
                                         py + icon_mm / 2))  # fmt: skip
                if facility.label not in unnamed:
                    points.append((POI_ORDER.get(icon, 5), facility.label, px, py))
    seen: set[str] = set()
    stations: list[PointTarget] = []
    pois: list[PointTarget] = []
    for order, text, px, py in sorted(points, key=lambda p: p[0]):
        if text in seen:
            continue  # a facility of several points is named once a sheet
        seen.add(text)
        target = PointTarget(text, px, py, label_pt * POI_SIZE, False, POI, inks.poi, icon_mm / 2)
        (stations if order == POI_ORDER["rail"] else pois).append(target)
    lines, areas = _water_targets(water, bbox, frame, label_pt, inks.water)
    placed = placer.place_points(stations)
    placed += placer.place_lines(lines, label_pt * WATER_SIZE)
    placed += placer.place_areas(areas)
    placed += placer.place_points(pois)
    return placed


def _water_targets(
    water: list[WaterName],
    bbox: tuple[float, float, float, float],
    frame: Rect,
    label_pt: float,
    colour: RGB,
) -> tuple[list[LabelTarget], list[AreaTarget]]:
    """The rivers (lines) and lakes (areas) of ``water`` inside ``bbox``, in ``frame``."""
    transform = _to_page(frame, bbox)
    view = shapely.box(*bbox)
    inner = _inner(frame)
    lines: list[LabelTarget] = []
    areas: list[AreaTarget] = []
    for item in water:
        piece = shapely.transform(item.geometry.intersection(view), transform)
        if piece.is_empty:
            continue
        if item.area:
            areas.append(AreaTarget(item.name, piece, label_pt, colour))
        else:
            line = shapely.line_merge(shapely.intersection(_lines(piece), inner))
            if not line.is_empty:
                lines.append(LabelTarget(-1, item.name, line, inner, WATER, colour))
    return lines, areas


def _overview(
    png: bytes,
    bbox: tuple[float, float, float, float],
    geometry: PageGeometry,
    maps: list[SheetMap],
    places: list[Place],
    rivers: list[WaterName],
    inks: _Inks,
) -> SheetMap:
    """The overview map of an atlas: its place and river names keep off the sheet numbers."""
    frame = geometry.frame
    ink = InkMap(png, frame.x, frame.y, frame.w)
    placer = Placer(ink, _inner(frame), LABEL_PT)
    sheets = [(m.sheet, m.bbox) for m in maps if m.sheet is not None]
    for number in sheet_numbers(frame, bbox, sheets, geometry.scale):
        placer.block(number.box)
    names = placer.place_points(_place_targets(places, bbox, frame, geometry.scale))
    lines, _ = _water_targets(rivers, bbox, frame, LABEL_PT, inks.water)
    features = placer.place_lines(lines, LABEL_PT * WATER_SIZE)
    return SheetMap(None, bbox, png, [], ink, names, features)


def _lines(geometry: Any) -> Any:
    """The lines of ``geometry``: polygons (pedestrian squares) give their outline."""
    parts = []
    for part in getattr(geometry, "geoms", [geometry]):
        if part.geom_type in ("Polygon", "MultiPolygon"):
            parts.append(part.boundary)
        elif part.geom_type in ("LineString", "MultiLineString", "LinearRing"):
            parts.append(part)
        elif part.geom_type == "GeometryCollection":
            parts.append(_lines(part))
    return shapely.union_all(parts) if parts else shapely.LineString()


def _render(
    renderer: MapRenderer,
    style: str,
    bbox: tuple[float, float, float, float],
    rect: Rect,
    dpi: float,
) -> bytes:
    """The map of ``bbox`` for a ``rect`` of the page, at ``dpi``."""
    return renderer(
        style=style,
        bbox_3857=bbox,
        width_px=max(1, round(rect.w / MM_PER_INCH * dpi)),
        height_px=max(1, round(rect.h / MM_PER_INCH * dpi)),
        pixel_ratio=dpi / 96.0,
    )


def _draw(
    drawer: PageDrawer,
    pages: list[list[Placed]],
    options: PlanOptions,
    width: float,
    height: float,
    map_dpi: float,
) -> list[bytes]:
    atlas = drawer.c.overview is not None
    sheets = drawer.c.maps if atlas else []
    total = len(pages) + len(sheets)

    def draw_page(ctx: cairo.Context[Any], number: int) -> None:
        if number == 1:
            drawer.draw_map_page(ctx, pages[0])
        elif number <= 1 + len(sheets):
            drawer.draw_sheet_page(ctx, sheets[number - 2])
        else:
            drawer.draw_index_page(ctx, pages[number - 1 - len(sheets)], number, total)

    if options.format == "pdf":
        buffer = io.BytesIO()
        surface = cairo.PDFSurface(buffer, width / MM_PER_INCH * 72, height / MM_PER_INCH * 72)
        surface.set_metadata(cairo.PDF_METADATA_TITLE, drawer.c.title)
        surface.set_metadata(cairo.PDF_METADATA_CREATOR, "fondplan")
        surface.set_metadata(
            cairo.PDF_METADATA_SUBJECT,
            f"{drawer.c.subtitle} — carte dessinée à {map_dpi:.0f} dpi "
            f"(style {options.style}), {ATTRIBUTION}",
        )
        ctx = cairo.Context(surface)
        ctx.scale(72 / MM_PER_INCH, 72 / MM_PER_INCH)
        for number in range(1, total + 1):
            draw_page(ctx, number)
            surface.show_page()
        surface.finish()
        drawer.images.clear()
        return [buffer.getvalue()]
    documents: list[bytes] = []
    scale = options.dpi / MM_PER_INCH
    for number in range(1, total + 1):
        image = cairo.ImageSurface(cairo.FORMAT_RGB24, round(width * scale), round(height * scale))
        page_ctx = cairo.Context(image)
        page_ctx.scale(scale, scale)
        draw_page(page_ctx, number)
        drawer.images.clear()
        out = io.BytesIO()
        image.write_to_png(out)
        image.finish()
        documents.append(out.getvalue())
    return documents

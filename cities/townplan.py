"""Making a town plan: gather the area's streets and facilities, render the map, lay out pages."""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass, field

import cairo
import shapely
from shapely.geometry.base import BaseGeometry

from cities.communes import Commune, commune_geometry
from cities.db import data_version, meta_value
from cities.errors import CitiesError
from cities.facilities import Category, Facility, facilities_index
from cities.flow import Placed
from cities.grid import Grid
from cities.layout import (
    ATTRIBUTION,
    MAX_MAP_PIXELS,
    Inset,
    PageDrawer,
    PageGeometry,
    PlanContent,
    Rect,
    frame_bbox,
    french_date,
    inset_rect,
    page_geometry,
)
from cities.paper import (
    Layout,
    Orientation,
    page_size_mm,
    parse_layout,
    parse_orientation,
    parse_paper,
)
from cities.parts import (
    MIN_ZOOM_GAIN,
    Enclave,
    detached_parts,
    main_part,
    name_enclaves,
    zoom_gain,
)
from cities.render import MapRenderer
from cities.streets import StreetEntry, street_index
from cities.style import PRINT_STYLE, legend_entries, load_style
from osmimport.database import connect

EARTH_RADIUS = 6378137.0
MM_PER_INCH = 25.4
FORMATS = ("pdf", "png")


def lonlat_to_3857(lon: float, lat: float) -> tuple[float, float]:
    """Web Mercator metres of a WGS84 point."""
    x = math.radians(lon) * EARTH_RADIUS
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * EARTH_RADIUS
    return x, y


@dataclass(frozen=True)
class PlanOptions:
    """How a plan is printed."""

    paper: str = "A3"
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


def commune_area(database_url: str, commune: Commune) -> PlanArea:
    """The plan area of a commune."""
    conn = connect(database_url)
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
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise CitiesError(f"--bbox wants W,S,E,N in degrees, got {text!r}") from None
    if not (-180 <= west < east <= 180 and -85 < south < north < 85):
        raise CitiesError(f"--bbox {text!r} is not a box W,S,E,N with W<E and S<N")
    if (east - west) > 2 or (north - south) > 2:
        raise CitiesError("--bbox is larger than 2 degrees: that is not a town plan")
    return west, south, east, north


def bbox_area(bbox: tuple[float, float, float, float], title: str | None) -> PlanArea:
    """The plan area of a W,S,E,N box in degrees."""
    west, south, east, north = bbox
    x0, y0 = lonlat_to_3857(west, south)
    x1, y1 = lonlat_to_3857(east, north)
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
    grid: Grid
    bbox: tuple[float, float, float, float]
    streets: list[StreetEntry]
    facilities: list[tuple[Category, list[Facility]]]
    data_version: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Resolution the map body was drawn at (below the asked DPI only on the largest papers).
    map_dpi: float = 0.0
    #: Detached parts of the commune left off the main map (shown in the overview inset).
    enclaves: list[Enclave] = field(default_factory=list)
    #: Scale of the main map: ground distance per paper distance (the N of "1:N").
    scale: float = 0.0

    @property
    def media_type(self) -> str:
        """The document's MIME type."""
        return "application/pdf" if self.format == "pdf" else "image/png"


def _data_note(database_url: str) -> tuple[str, str]:
    conn = connect(database_url)
    try:
        version = data_version(conn)
        imported = meta_value(conn, "imported_at")
    finally:
        conn.close()
    note = f"Données importées le {str(imported)[:10]}" if imported else ""
    return version, note


def make_plan(
    database_url: str, area: PlanArea, options: PlanOptions, renderer: MapRenderer
) -> Plan:
    """Draw the plan of ``area``: PDF (all pages in one document) or PNG (one per page)."""
    style = load_style(options.style)
    whole = area.geometry
    main = main_part(whole, area.latitude) if area.masked else whole
    width, height, geometry, bbox = _frame(main.bounds, options)
    if main is not whole:
        gain = zoom_gain(whole.bounds, main.bounds, geometry.frame.w, geometry.frame.h)
        if gain < MIN_ZOOM_GAIN:
            main = whole
            width, height, geometry, bbox = _frame(whole.bounds, options)
    grid = Grid.for_frame(bbox, geometry.frame.w, geometry.frame.h)

    conn = connect(database_url)
    try:
        parts = detached_parts(whole, bbox, area.latitude) if main is not whole else []
        enclaves = name_enclaves(conn, parts, area.latitude)
        streets = street_index(conn, area.geometry, grid, latitude=area.latitude, enclaves=enclaves)
        facilities = facilities_index(conn, area.geometry, grid, enclaves)
    finally:
        conn.close()
    version, note = _data_note(database_url)

    map_dpi = float(options.dpi)
    pixels = (geometry.frame.w / MM_PER_INCH * map_dpi) * (geometry.frame.h / MM_PER_INCH * map_dpi)
    warnings: list[str] = []
    if pixels > MAX_MAP_PIXELS:
        map_dpi *= math.sqrt(MAX_MAP_PIXELS / pixels)
    if map_dpi < options.dpi:
        warnings.append(f"map drawn at {map_dpi:.0f} dpi to bound memory")
    map_png = _render(renderer, options.style, bbox, geometry.frame, map_dpi)
    inset: Inset | None = None
    if enclaves:
        rect = inset_rect(geometry.frame, bbox, whole)
        inset_bbox = frame_bbox(whole.bounds, rect, pad=0.06)
        inset = Inset(
            rect,
            inset_bbox,
            _render(renderer, options.style, inset_bbox, rect, map_dpi),
            tuple(enclaves),
        )
    today = dt.date.today()
    content = PlanContent(
        title=options.title or area.title,
        subtitle=area.subtitle,
        area=area.geometry,
        masked=area.masked,
        latitude=area.latitude,
        bbox=bbox,
        grid=grid,
        map_png=map_png,
        streets=streets,
        facilities=facilities,
        legend=legend_entries(style),
        date=french_date(today.year, today.month, today.day),
        data_note=note,
        inset=inset,
    )
    drawer = PageDrawer(content, geometry)
    pages = drawer.paginate(options.layout)
    documents = _draw(drawer, pages, options, width, height, map_dpi)
    return Plan(
        options.format,
        documents,
        len(pages),
        grid,
        bbox,
        streets,
        facilities,
        version,
        warnings,
        map_dpi,
        enclaves,
        (bbox[2] - bbox[0]) / geometry.frame.w * math.cos(math.radians(area.latitude)) * 1000,
    )


def _frame(
    bounds: tuple[float, float, float, float], options: PlanOptions
) -> tuple[float, float, PageGeometry, tuple[float, float, float, float]]:
    """Paper size (mm), page geometry and map extent of a plan framing ``bounds``."""
    ratio = (bounds[2] - bounds[0]) / max(bounds[3] - bounds[1], 1.0)
    width, height = page_size_mm(options.paper, options.orientation, ratio)
    geometry = page_geometry(width, height, options.layout)
    return width, height, geometry, frame_bbox(bounds, geometry.frame)


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
    total = len(pages)
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
        for number, placed in enumerate(pages, start=1):
            if number == 1:
                drawer.draw_map_page(ctx, placed)
            else:
                drawer.draw_index_page(ctx, placed, number, total)
            surface.show_page()
        surface.finish()
        return [buffer.getvalue()]
    documents: list[bytes] = []
    scale = options.dpi / MM_PER_INCH
    for number, placed in enumerate(pages, start=1):
        image = cairo.ImageSurface(cairo.FORMAT_RGB24, round(width * scale), round(height * scale))
        page_ctx = cairo.Context(image)
        page_ctx.scale(scale, scale)
        if number == 1:
            drawer.draw_map_page(page_ctx, placed)
        else:
            drawer.draw_index_page(page_ctx, placed, number, total)
        out = io.BytesIO()
        image.write_to_png(out)
        image.finish()
        documents.append(out.getvalue())
    return documents

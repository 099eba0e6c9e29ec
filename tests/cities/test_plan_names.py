"""Street names on the plans, read back from the PDF: each index street named in a cell it lists."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cairo
import pypdf
import pytest
import shapely
from shapely.geometry import Polygon

from cities.flow import PT, Column, Item, Measure, TextSizes, flow, measure_item
from cities.grid import Cell, Grid
from cities.labels import (
    ASCENT,
    DESCENT,
    LABEL_FONT,
    PLACE,
    POI,
    STREET,
    WATER,
    AreaTarget,
    InkMap,
    LabelTarget,
    Placer,
    PointTarget,
    StreetLabel,
    TextWidths,
)
from cities.layout import Rect, page_geometry
from cities.paper import Layout, Orientation, page_size_mm
from cities.render import MapRenderer
from cities.sheets import Atlas, atlas_of
from cities.style import legend_entries, load_style, without_text
from cities.townplan import Plan, PlanOptions, bbox_area, make_plan
from tests.cities.conftest import plan_of

MM = 25.4 / 72
#: Mulhouse's old town: the whole of data/sample/mulhouse-centre.osm.pbf.
MULHOUSE_CENTRE = (7.326, 47.749, 7.342, 47.755)


@dataclass(frozen=True)
class Text:
    """A text run of a PDF page: its string, baseline start (mm from top-left), size, angle."""

    text: str
    x: float
    y: float
    size: float
    angle: float
    font: str


def page_texts(document: bytes) -> list[list[Text]]:
    """Every text run of every page with its position, read by pypdf."""
    reader = pypdf.PdfReader(io.BytesIO(document))
    pages: list[list[Text]] = []
    for page in reader.pages:
        height = float(page.mediabox.height)
        runs: list[Text] = []

        def visit(
            text: str,
            cm: list[float],
            tm: list[float],
            font: object,
            _size: float,
            runs: list[Text] = runs,
            height: float = height,
        ) -> None:
            if not text.strip():
                return
            a, b, c, d, e, f = cm
            x = tm[4] * a + tm[5] * c + e
            y = tm[4] * b + tm[5] * d + f
            # The text's x axis in PDF space, then in top-down page space.
            ux, uy = tm[0] * a + tm[1] * c, tm[0] * b + tm[1] * d
            name = str(font.get("/BaseFont", "")) if isinstance(font, dict) else ""
            runs.append(
                Text(text.strip(), x * MM, (height - y) * MM, math.hypot(ux, uy),
                     math.atan2(-uy, ux), name)
            )  # fmt: skip

        page.extract_text(visitor_text=visit)
        pages.append(runs)
    return pages


def is_street_name(run: Text) -> bool:
    """Street names are the plan's only text in the condensed face."""
    return LABEL_FONT.replace(" ", "") in run.font


def is_water_name(run: Text) -> bool:
    """Names of rivers and lakes are the plan's only oblique text."""
    return "Oblique" in run.font


def kind_of(run: Text) -> str:
    """The kind of name a map text is by its face (places and facilities share theirs)."""
    return STREET if is_street_name(run) else WATER if is_water_name(run) else PLACE


def label_box(run: Text, widths: TextWidths) -> Polygon:
    """The ink box of a name (no halo) on the page, in mm, along its baseline."""
    bold = "Bold" in run.font
    width, em = widths(run.text, run.size, kind_of(run), bold), run.size * MM
    ux, uy = math.cos(run.angle), math.sin(run.angle)
    dx, dy = -uy, ux
    top, bottom = -ASCENT * em, DESCENT * em
    return Polygon(
        [
            (run.x + dx * top, run.y + dy * top),
            (run.x + ux * width + dx * top, run.y + uy * width + dy * top),
            (run.x + ux * width + dx * bottom, run.y + uy * width + dy * bottom),
            (run.x + dx * bottom, run.y + dy * bottom),
        ]
    )


def cell_of(plan: Plan, page: int, x: float, y: float) -> tuple[int, Cell] | None:
    """The (sheet number, cell) of page point (x, y) mm, if it is on a sheet's map."""
    for number, frame, sheet_map in plan.sheet_pages:
        if number != page + 1 or sheet_map.sheet is None:
            continue
        if not (frame.x <= x <= frame.x + frame.w and frame.y <= y <= frame.y + frame.h):
            return None
        b = sheet_map.bbox
        mx = b[0] + (x - frame.x) / frame.w * (b[2] - b[0])
        my = b[3] - (y - frame.y) / frame.h * (b[3] - b[1])
        cell = plan.grid.cell_at(mx, my)
        return None if cell is None else (sheet_map.sheet.number, cell)
    return None


@pytest.fixture(scope="module")
def schaan(liechtenstein_url: str, renderer_for: Callable[[str], MapRenderer]) -> Plan:
    return plan_of(
        liechtenstein_url, "Schaan", renderer_for(liechtenstein_url), paper="A3", dpi=100
    )


@pytest.fixture(scope="module")
def mulhouse(mulhouse_url: str, renderer_for: Callable[[str], MapRenderer]) -> Plan:
    area = bbox_area(MULHOUSE_CENTRE, "Mulhouse centre")
    options = PlanOptions(paper="A3", dpi=100)
    return make_plan(mulhouse_url, area, options, renderer_for(mulhouse_url))


@pytest.fixture(params=["vaduz", "schaan", "mulhouse"])
def plan(request: pytest.FixtureRequest) -> Plan:
    if request.param == "vaduz":
        result: Plan = request.getfixturevalue("vaduz_a3")[1]
    else:
        result = request.getfixturevalue(request.param)
    return result


def test_reading_scale(plan: Plan) -> None:
    assert 3_000 <= plan.scale <= 12_000
    assert plan.streets and plan.label_count >= len(plan.streets)


def test_every_index_street_is_named_in_a_cell_it_lists(plan: Plan) -> None:
    pages = page_texts(plan.documents[0])
    text = " ".join(run.text for page in pages for run in page if not is_street_name(run))
    found: dict[str, set[tuple[int, Cell]]] = {}
    for number, runs in enumerate(pages):
        for run in runs:
            if is_street_name(run) and (where := cell_of(plan, number, run.x, run.y)):
                found.setdefault(run.text, set()).add(where)
    unnamed = []
    for entry in plan.streets:
        # What the index prints for the street, read back as the sheet-and-cell pairs it means.
        references = plan.atlas.references(entry.cells)
        assert references in text or references.split(", ")[0] in text, entry.display
        listed = set()
        for cell in entry.cells:
            sheet = plan.atlas.sheet_of(cell)
            assert sheet is not None
            listed.add((sheet.number, cell))
        if not found.get(entry.name, set()) & listed:
            unnamed.append(entry.display)
    assert unnamed == []


def text_box(run: Text, widths: TextWidths) -> Polygon:
    """The ink box of any text run of a map (names of streets, places, facilities and water,
    sheet numbers)."""
    return label_box(run, widths)


def map_frames(plan: Plan) -> dict[int, Rect]:
    """The map frame of each page (from 0) that has one: sheets and an atlas's overview."""
    frames = {number - 1: frame for number, frame, _ in plan.sheet_pages}
    if plan.overview is not None:
        frames[0] = plan.overview[0]
    return frames


def test_map_text_does_not_overlap_and_stays_in_the_frame(plan: Plan) -> None:
    """Every name on a map (streets, places, stations and facilities, water, sheet numbers) is
    whole inside its frame and clear of the others; the map images themselves carry no text
    that a frame could cut."""
    widths = TextWidths()
    frames = map_frames(plan)
    places = waters = names = 0
    for number, runs in enumerate(page_texts(plan.documents[0])):
        if number not in frames:
            assert [run for run in runs if is_street_name(run)] == []
            continue
        f = frames[number]
        frame = shapely.box(f.x, f.y, f.x + f.w, f.y + f.h)
        on_map = [run for run in runs if frame.contains(shapely.Point(run.x, run.y))]
        boxes = [text_box(run, widths) for run in on_map]
        names += len(boxes)
        if not boxes:
            continue  # a sheet printing only a pictogram's cell may have no name to write
        assert [
            run.text for run, box in zip(on_map, boxes, strict=True) if not frame.contains(box)
        ] == []
        tree = shapely.STRtree(boxes)
        left, right = tree.query(boxes, predicate="intersects")
        overlaps = [
            (on_map[i].text, on_map[j].text)
            for i, j in zip(left.tolist(), right.tolist(), strict=True)
            if i < j and boxes[i].intersection(boxes[j]).area > 0.01
        ]
        assert overlaps == []
        places += sum(1 for run in on_map if kind_of(run) == PLACE and not run.text.isdigit())
        waters += sum(1 for run in on_map if is_water_name(run))
    assert places == plan.place_count + plan.poi_count
    assert waters == plan.water_count
    assert names >= plan.label_count + plan.place_count + plan.poi_count + plan.water_count


def test_plan_styles_carry_no_text() -> None:
    """The maps are drawn without text: MapLibre's labels would be cut at the sheet frames."""
    style = load_style("print")
    plain = without_text(style)
    assert not any("text-field" in layer.get("layout", {}) for layer in plain["layers"])
    icons = [layer["id"] for layer in style["layers"] if "icon-image" in layer.get("layout", {})]
    assert icons and icons == [
        layer["id"] for layer in plain["layers"] if "icon-image" in layer.get("layout", {})
    ]


def test_car_parks_are_not_streets(vaduz_a3: tuple[Path, Plan]) -> None:
    names = {entry.name for entry in vaduz_a3[1].streets}
    assert "Centrum Parking" not in names and "Centrum Parking Garage" not in names
    assert "Städtle" in names


def test_vaduz_atlas_sheets(vaduz_a3: tuple[Path, Plan]) -> None:
    """Vaduz does not read on one A3: an overview page, then sheets whose grid runs on."""
    _, plan = vaduz_a3
    assert plan.atlas.is_atlas
    pages = page_texts(plan.documents[0])
    overview = " ".join(run.text for run in pages[0])
    assert "tableau d'assemblage" in overview
    columns_seen: set[str] = set()
    for number, _, sheet_map in plan.sheet_pages:
        assert sheet_map.sheet is not None
        title = " ".join(run.text for run in pages[number - 1][:2])
        assert f"feuille {sheet_map.sheet.number}" in title
        columns_seen.update(run.text for run in pages[number - 1] if run.text.isalpha())
    # The sheets' column letters are those of one grid (not A, B, C… again on each sheet).
    assert len({c for c in columns_seen if len(c) == 1}) > plan.atlas.sheets[0].cols
    assert_regular(plan.atlas)
    # Place names are written by the plan, on the overview (clear of the sheet numbers) too.
    assert plan.overview is not None and plan.overview[1].places
    assert plan.place_count > len(plan.overview[1].places)


def assert_regular(atlas: Atlas) -> None:
    """The sheets are blocks of one lattice of sheet-sized blocks: edge to edge, none overlapping,
    numbered in reading order."""
    sheets = atlas.sheets
    cols, rows = sheets[0].cols, sheets[0].rows
    assert {(s.cols, s.rows) for s in sheets} == {(cols, rows)}
    assert len({s.col0 % cols for s in sheets}) == 1
    assert len({s.row0 % rows for s in sheets}) == 1
    assert len({(s.col0, s.row0) for s in sheets}) == len(sheets)
    assert [s.number for s in sorted(sheets, key=lambda s: (s.row0, s.col0))] == list(
        range(1, len(sheets) + 1)
    )


def test_atlas_covers_needed_cells_with_a_continuing_grid() -> None:
    grid = Grid((0.0, 0.0, 2000.0, 1000.0), 20, 10)
    needed = [Cell(1, 1), Cell(2, 2), Cell(15, 8), Cell(16, 8)]
    atlas: Atlas = atlas_of(grid, needed, 90.0, 90.0)  # sheets of 2 × 2 cells
    assert len(atlas.sheets) == 2
    assert_regular(atlas)
    # Cells in an L: three sheets of one lattice, not a fourth to cover the corner.
    corner = [Cell(c, r) for c in range(4) for r in range(2)] + [Cell(0, 2), Cell(1, 3)]
    l_shape = atlas_of(grid, corner, 90.0, 90.0)
    assert len(l_shape.sheets) == 3
    assert_regular(l_shape)
    for cell in needed:
        x0, y0, x1, y1 = grid.cell_box(cell)
        moved = atlas.grid.cell_at((x0 + x1) / 2, (y0 + y1) / 2)
        assert moved is not None and atlas.sheet_of(moved) is not None
    assert atlas.grid.cell_width == grid.cell_width
    assert "1: " in atlas.references([atlas.grid.cell_at(150, 850)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("paper", "orientation"), [("A3", Orientation.PORTRAIT), ("A4", Orientation.LANDSCAPE)]
)
def test_legend_labels_are_whole_and_inside_the_footer(
    liechtenstein_url: str,
    renderer_for: Callable[[str], MapRenderer],
    paper: str,
    orientation: Orientation,
) -> None:
    plan = plan_of(liechtenstein_url, "Planken", renderer_for(liechtenstein_url), paper=paper,
                   orientation=orientation, dpi=72)  # fmt: skip
    width, height = page_size_mm(paper, orientation, 1.0)
    footer = page_geometry(width, height, Layout.INDEX_SIDE).footer
    runs = [r for r in page_texts(plan.documents[0])[0] if r.y > footer.y]
    labels = {entry.label for entry in legend_entries(load_style("print"))}
    labels |= {category.title for category, _ in plan.facilities} | {"Limite de la commune"}
    assert labels <= {run.text for run in runs}
    measure = Measure()
    for run in runs:
        width = measure.width(run.text, run.size / PT * MM, bold="Bold" in run.font)
        assert footer.x - 0.5 <= run.x, run.text
        assert run.x + width <= footer.x + footer.w + 0.5, run.text
        assert run.y <= footer.y + footer.h + 0.5, run.text


def test_headings_stay_with_their_first_entry() -> None:
    """A title followed by a heading never ends a column: both go on with their first entry."""
    sizes = TextSizes(body=7.0, letter=9.5, title=11.0)
    measure = Measure()
    items = [Item("entry", f"Rue {n}", "A1") for n in range(3)]
    items += [Item("title", "Équipements", keep_with_next=True)]
    items += [Item("category", "Mairie", keep_with_next=True), Item("entry", "Mairie", "B2")]
    probe = [Item(i.kind, i.text, i.cells, keep_with_next=i.keep_with_next) for i in items]
    for item in probe:
        measure_item(item, 60.0, measure, sizes)
    # The column holds the entries and the title and the heading, but not the first facility.
    height = sum(i.height for i in probe[:5]) + probe[5].height * 0.5
    pages = flow(items, [Column(0, 0, 60, height), Column(70, 0, 60, height)],
                 lambda: [Column(0, 0, 60, 500)], measure, sizes)  # fmt: skip
    first_column = [p.item.kind for p in pages[0] if p.x == 0]
    assert first_column == ["entry", "entry", "entry"]
    assert [p.item.kind for p in pages[0] if p.x == 70] == ["title", "category", "entry"]


def sheet_runs(plan: Plan) -> list[tuple[int, Text]]:
    """The text runs inside the map frames of the plan's sheets, with their page (from 0)."""
    runs = []
    pages = page_texts(plan.documents[0])
    for number, f, _ in plan.sheet_pages:
        frame = shapely.box(f.x, f.y, f.x + f.w, f.y + f.h)
        runs += [
            (number - 1, r) for r in pages[number - 1] if frame.contains(shapely.Point(r.x, r.y))
        ]
    return runs


@pytest.mark.parametrize("name", ["vaduz", "schaan"])
def test_the_rhine_is_named_along_it(request: pytest.FixtureRequest, name: str) -> None:
    plan: Plan = (
        request.getfixturevalue(name)
        if name == "schaan"
        else request.getfixturevalue("vaduz_a3")[1]
    )
    waters = [run for _, run in sheet_runs(plan) if is_water_name(run)]
    # The French name first, as the styles label it ("Le Rhin"; "Rhein" where it has none).
    assert {"Le Rhin", "Rhein"} & {run.text for run in waters}
    # Rivers are named along their course: the Rhine runs south to north, its name nearly so.
    rhine = [run for run in waters if run.text in ("Le Rhin", "Rhein")]
    assert any(abs(math.sin(run.angle)) > 0.7 for run in rhine)
    # An atlas's overview names its rivers too.
    assert plan.overview is not None
    overview = [run.text for run in page_texts(plan.documents[0])[0] if is_water_name(run)]
    assert {"Le Rhin", "Rhein"} & set(overview)
    # Water names are the style's water-label colour, not the street names' ink.
    assert all(label.colour != (0.1, 0.1, 0.1) for _, _, m in plan.sheet_pages
               for label in m.features if label.kind == WATER)  # fmt: skip


def facility_points(plan: Plan) -> dict[str, list[tuple[float, float]]]:
    """The points (EPSG:3857) of each named facility of the plan's index, by label."""
    points: dict[str, list[tuple[float, float]]] = {}
    for category, entries in plan.facilities:
        for facility in entries:
            if facility.label not in category.members.values():
                points.setdefault(facility.label, []).extend(facility.points)
    return points


def test_stations_and_facilities_are_named_beside_their_pictogram(schaan: Plan) -> None:
    points = facility_points(schaan)
    assert "Schaan-Vaduz" in points  # the railway halt of the data
    runs = [(page, run) for page, run in sheet_runs(schaan) if kind_of(run) == PLACE]
    named = [(page, run) for page, run in runs if run.text in points and not run.text.isdigit()]
    assert "Schaan-Vaduz" in {run.text for _, run in named}
    assert len({run.text for _, run in named}) >= 5
    widths = TextWidths()
    for page, run in named:
        number, f, sheet_map = next(p for p in schaan.sheet_pages if p[0] == page + 1)
        b = sheet_map.bbox
        box = label_box(run, widths)
        on_page = [
            shapely.Point(f.x + (x - b[0]) / (b[2] - b[0]) * f.w,
                          f.y + (b[3] - y) / (b[3] - b[1]) * f.h)
            for x, y in points[run.text]
        ]  # fmt: skip
        # Beside one of its points (within a few millimetres), never over it.
        assert min(box.distance(p) for p in on_page) < 6.0, run.text
        assert not any(box.contains(p) for p in on_page), run.text


def blank_placer(width: float = 120.0, height: float = 60.0) -> Placer:
    """A placer over white paper (no pictogram), its frame the whole page."""
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, int(width * 4), int(height * 4))
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(1, 1, 1)
    ctx.paint()
    out = io.BytesIO()
    surface.write_to_png(out)
    ink = InkMap(out.getvalue(), 0.0, 0.0, width)
    return Placer(ink, shapely.box(0.5, 0.5, width - 0.5, height - 0.5), 6.2)


def test_street_names_win_over_water_and_facilities() -> None:
    """A river along a street and a facility on it: the street is named first, the others
    only where they do not touch its name, or not at all."""
    placer = blank_placer()
    street = shapely.LineString([(20, 30), (60, 30)])
    frame = placer.frame
    left = placer.place([LabelTarget(0, "Rue du Rhin", street, frame)])
    assert left == [] and len(placer.labels) == 1
    before = placer.labels[0]
    river = LabelTarget(-1, "Le Rhin", street, frame, WATER, (0.1, 0.25, 0.4))
    waters = placer.place_lines([river], 6.5)
    poi = PointTarget("Musée", 40.0, 30.0, 5.3, False, POI, (0.25, 0.25, 0.25), clear=1.8)
    pois = placer.place_points([poi])
    assert placer.labels == [before]
    for label in waters + pois:
        assert not label.box.intersects(before.box)
    assert all(label.kind == WATER for label in waters)
    # The facility's name stands beside its pictogram, not on it.
    assert pois and not pois[0].box.contains(shapely.Point(40.0, 30.0)) and pois[0].kind == POI
    # Squeezed between two street names on a short line, the river is left unnamed.
    tight = blank_placer(40.0, 10.0)
    tight.place([LabelTarget(0, "Rue", shapely.LineString([(2, 5), (20, 5)]), tight.frame)])
    tight.block(shapely.box(0, 0, 40, 10).difference(tight.labels[0].box))
    line = shapely.LineString([(2, 5), (38, 5)])
    assert tight.place_lines([LabelTarget(-1, "Le Rhin", line, tight.frame, WATER)], 6.5) == []


def test_lakes_are_named_inside_their_outline() -> None:
    placer = blank_placer()
    lake = shapely.Polygon([(10, 10), (70, 12), (75, 40), (15, 45)])
    pond = shapely.box(90, 20, 95, 24)
    blue = (0.1, 0.25, 0.4)
    placed = placer.place_areas(
        [AreaTarget("Gänglesee", lake, 6.2, blue), AreaTarget("Weiher", pond, 6.2, blue)]
    )
    assert [label.text for label in placed] == ["Gänglesee"]
    assert lake.contains(label_box_of(placed[0])) and placed[0].kind == WATER
    # A second name may not take its place: it goes elsewhere inside, or nowhere.
    again = placer.place_areas([AreaTarget("Gänglesee", lake, 6.2, blue)])
    assert all(not label.box.intersects(placed[0].box) for label in again)


def label_box_of(label: StreetLabel) -> Polygon:
    """The ink box (no halo) of a placed level name."""
    width, em = TextWidths()(label.text, label.size, label.kind, label.bold), label.size * MM
    return shapely.box(label.x, label.y - ASCENT * em, label.x + width, label.y + DESCENT * em)

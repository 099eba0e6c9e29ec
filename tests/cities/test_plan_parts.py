"""Vector pictograms, and icons kept off the labels."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import cairo
import pypdf
import pytest
from pypdf.generic import DictionaryObject, IndirectObject

from cities.facilities import CATEGORIES
from cities.flow import FONT
from cities.icons import draw_icon
from cities.labels import InkMap
from cities.layout import LABEL_INK, LabelSpots, Rect
from cities.townplan import Plan
from osmimport.paths import styles_dir
from tests.cities.test_townplan import pdf_text

RG = re.compile(rb"([\d.]+) ([\d.]+) ([\d.]+) rg")


@pytest.fixture(scope="module")
def vaduz(vaduz_a3: tuple[Path, Plan]) -> Plan:
    return vaduz_a3[1]


def icon_fill(name: str) -> tuple[float, float, float]:
    """The disc colour of a styles/icons pictogram, read from its SVG."""
    root = ET.parse(styles_dir() / "icons" / f"{name}.svg").getroot()
    circle = next(el for el in root.iter() if el.tag.endswith("circle"))
    fill = circle.attrib["fill"]
    return (int(fill[1:3], 16) / 255, int(fill[3:5], 16) / 255, int(fill[5:7], 16) / 255)


def page_streams(page: pypdf.PageObject) -> tuple[bytes, int]:
    """The page's content with that of its form XObjects, and its count of image XObjects."""
    contents = page.get_contents()
    data = contents.get_data() if contents is not None else b""
    images = 0
    pending: list[Any] = [page.get("/Resources")]
    seen: set[int] = set()
    while pending:
        resources = pending.pop()
        if isinstance(resources, IndirectObject):
            resources = resources.get_object()
        if not isinstance(resources, DictionaryObject) or "/XObject" not in resources:
            continue
        xobjects: Any = resources["/XObject"]
        for ref in xobjects.values():
            obj = ref.get_object()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.get("/Subtype") == "/Image":
                images += 1
            elif obj.get("/Subtype") == "/Form":
                data += obj.get_data()
                pending.append(obj.get("/Resources"))
    return data, images


def has_colour(data: bytes, rgb: tuple[float, float, float]) -> bool:
    return any(
        all(abs(float(v) - c) < 0.003 for v, c in zip(match, rgb, strict=True))
        for match in RG.findall(data)
    )


def test_icon_is_drawn_as_vector_paths(tmp_path: Path) -> None:
    out = tmp_path / "icon.pdf"
    surface = cairo.PDFSurface(str(out), 100, 100)
    draw_icon(cairo.Context(surface), "townhall", 50, 50, 40)
    surface.finish()
    data, images = page_streams(pypdf.PdfReader(out).pages[0])
    assert images == 0
    assert has_colour(data, icon_fill("townhall"))
    # The disc is drawn with Bézier curves, the building with straight lines.
    assert re.search(rb"\sc\s", data) and re.search(rb"\sl\s", data)


def test_facilities_index_shows_vector_icons(vaduz: Plan) -> None:
    reader = pypdf.PdfReader(io.BytesIO(vaduz.documents[0]))
    texts = pdf_text(vaduz.documents[0])
    number = next(i for i, text in enumerate(texts) if "Équipements" in text)
    data, images = page_streams(reader.pages[number])
    shown = {category.icon for category, _ in vaduz.facilities}
    assert shown
    for name in shown:
        assert has_colour(data, icon_fill(name)), name
    if number > 0:
        # An index page has no map: its pictograms can only be vector paths.
        assert images == 0
    # The same pictograms are on the map page (map icons and legend).
    first, _ = page_streams(reader.pages[0])
    for name in shown:
        assert has_colour(first, icon_fill(name)), name
    assert {c.key for c, _ in vaduz.facilities} <= {c.key for c in CATEGORIES}


def _label_map(tmp_label: str) -> tuple[bytes, Rect]:
    """A 100 × 60 mm map at 10 px/mm, white with one black label centred at (50, 30) mm."""
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, 1000, 600)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(1, 1, 1)
    ctx.paint()
    ctx.set_source_rgb(0, 0, 0)
    ctx.select_font_face(FONT, cairo.FONT_SLANT_NORMAL, cairo.FONT_WEIGHT_BOLD)
    ctx.set_font_size(60)
    e = ctx.text_extents(tmp_label)
    ctx.move_to(500 - e.width / 2 - e.x_bearing, 300 - e.height / 2 - e.y_bearing)
    ctx.show_text(tmp_label)
    out = io.BytesIO()
    surface.write_to_png(out)
    return out.getvalue(), Rect(0, 0, 100, 60)


def test_icons_move_off_labels() -> None:
    png, frame = _label_map("Vaduz")
    spots = LabelSpots(InkMap(png, frame.x, frame.y, frame.w), frame)
    size = 4.0
    assert spots.ink(50, 30, size) > LABEL_INK
    x, y = spots.place(50, 30, size, [])
    assert (x, y) != (50, 30)
    assert spots.ink(x, y, size) <= LABEL_INK
    assert abs(x - 50) + abs(y - 30) < size * 5
    # On blank paper the icon stays on its place; it keeps clear of icons already drawn.
    assert spots.place(10, 10, size, []) == (10, 10)
    moved = spots.place(10, 10, size, [(10, 10)])
    assert moved != (10, 10) and spots.ink(*moved, size) <= LABEL_INK

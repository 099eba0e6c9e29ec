"""Town plans of Liechtenstein communes and of Mulhouse, checked on the decoded documents."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pypdf
import pytest
import shapely
from PIL import Image

from cities.communes import find_commune, list_communes
from cities.errors import IncompleteBoundary, UnknownCommune
from cities.layout import ATTRIBUTION, Rect, page_geometry
from cities.paper import PAPERS, Layout, Orientation, page_size_mm
from cities.render import MapRenderer
from cities.streets import EXCLUDED_KINDS
from cities.townplan import Plan
from tests.cities.conftest import plan_of
from tileserver.cli import main


def pdf_text(document: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(document))
    return [page.extract_text() or "" for page in reader.pages]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def vaduz_streets(url: str) -> dict[str, shapely.Geometry]:
    """Named streets of Vaduz straight from the database, clipped to the commune."""
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT COALESCE(NULLIF(s.name_fr, ''), s.name),
                   ST_AsBinary(ST_Union(ST_Intersection(s.geom, c.geom)))
            FROM osm.street_labels s JOIN osm.communes c ON ST_Intersects(s.geom, c.geom)
            LEFT JOIN osm.streets w ON w.osm_type = s.osm_type AND w.osm_id = s.osm_id
            WHERE c.name = 'Vaduz' AND COALESCE(NULLIF(s.name_fr, ''), s.name, '') <> ''
              AND NOT (s.kind = ANY(%s)) AND COALESCE(w.service, '') <> 'parking_aisle'
              AND NOT (s.kind = 'service' AND s.name ILIKE '%%parking%%')
            GROUP BY 1
            """,
            (EXCLUDED_KINDS,),
        )
        rows = cur.fetchall()
    conn.close()
    return {name: shapely.from_wkb(bytes(wkb)) for name, wkb in rows}


def test_commune_lookup(liechtenstein_url: str) -> None:
    conn = psycopg2.connect(liechtenstein_url)
    try:
        names = {c.label for c in list_communes(conn)}
        assert {"Vaduz", "Schaan", "Triesenberg"} <= names
        assert find_commune(conn, name="VADUZ").label == "Vaduz"
        assert find_commune(conn, name="triesenberg").label == "Triesenberg"
        with pytest.raises(UnknownCommune) as info:
            find_commune(conn, name="Vadus")
        assert "Vaduz" in info.value.suggestions
        incomplete = [c for c in list_communes(conn) if not c.complete]
        if incomplete:
            with pytest.raises(IncompleteBoundary):
                find_commune(conn, name=incomplete[0].label)
    finally:
        conn.close()


def test_cli_unknown_commune(
    liechtenstein_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", liechtenstein_url)
    assert main(["townplan", "Vadus", "-o", "x.pdf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Vaduz" in err
    assert main(["townplan", "Vaduz", "--paper", "B5"]) == 1
    assert "unknown paper" in capsys.readouterr().err


def test_vaduz_pdf_text(vaduz_a3: tuple[Path, Plan], liechtenstein_url: str) -> None:
    path, plan = vaduz_a3
    pages = pdf_text(path.read_bytes())
    assert len(pages) == plan.page_count >= 1
    assert pypdf.PdfReader(path).metadata.title == "Vaduz"  # type: ignore[union-attr]
    text = flat(" ".join(pages))
    assert "Vaduz" in pages[0]
    assert ATTRIBUTION in flat(pages[0])
    assert "Index des rues" in text
    # pdftotext reads it too.
    assert (
        "Vaduz"
        in subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    )
    streets = vaduz_streets(liechtenstein_url)
    assert len(streets) > 100
    # Every named street of the commune is listed (names short enough not to wrap).
    missing = [name for name in streets if len(name) <= 24 and flat(name) not in text]
    assert missing == []


def test_index_cells_match_geometry(vaduz_a3: tuple[Path, Plan], liechtenstein_url: str) -> None:
    _, plan = vaduz_a3
    grid = plan.grid
    streets = vaduz_streets(liechtenstein_url)
    listed: dict[str, set[str]] = {}
    for entry in plan.streets:
        listed.setdefault(entry.name, set()).update(c.label for c in entry.cells)
    sample = random.Random(6).sample(sorted(streets), 40)
    cols = [chr(ord("A") + i) for i in range(grid.cols)]
    for name in sample:
        geometry = streets[name]
        expected = set()
        for i, col in enumerate(cols):
            for j in range(grid.rows):
                box = shapely.box(
                    grid.bbox[0] + i * grid.cell_width,
                    grid.bbox[3] - (j + 1) * grid.cell_height,
                    grid.bbox[0] + (i + 1) * grid.cell_width,
                    grid.bbox[3] - j * grid.cell_height,
                )
                if geometry.intersects(box):
                    expected.add(f"{col}{j + 1}")
        assert listed.get(name) == expected, name


def test_same_name_streets_stay_apart(vaduz_a3: tuple[Path, Plan]) -> None:
    _, plan = vaduz_a3
    displays = [entry.display for entry in plan.streets]
    assert len(displays) == len(set(displays))


def _a3_first_page(
    path: Path, tmp_path: Path, *, dpi: int, mode: str
) -> tuple[Image.Image, Rect, tuple[float, float]]:
    """Page 1 of an A3 landscape index-side plan as an image, its map frame, and px per mm."""
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
        check=True,
    )
    image = Image.open(next(tmp_path.glob("p*.png"))).convert(mode)
    width_mm, height_mm = page_size_mm("A3", Orientation.LANDSCAPE, 1.0)
    frame = page_geometry(width_mm, height_mm, Layout.INDEX_SIDE).frame
    return image, frame, (image.width / width_mm, image.height / height_mm)


def _inside(image: Image.Image, frame: Rect, scale: tuple[float, float], inset: int) -> Image.Image:
    """The part of ``image`` inside the map frame, ``inset`` pixels in from its edge."""
    sx, sy = scale
    return image.crop(
        (int(frame.x * sx) + inset, int(frame.y * sy) + inset,
         int((frame.x + frame.w) * sx) - inset, int((frame.y + frame.h) * sy) - inset)
    )  # fmt: skip


def test_map_area_is_drawn(vaduz_a3: tuple[Path, Plan], tmp_path: Path) -> None:
    path, _ = vaduz_a3
    image, frame, (sx, sy) = _a3_first_page(path, tmp_path, dpi=40, mode="L")
    crop = _inside(image, frame, (sx, sy), inset=2)
    pixels = list(crop.getdata())
    dark = sum(1 for p in pixels if p < 200)
    assert len(set(pixels)) > 20
    assert dark > len(pixels) * 0.005
    margin = image.crop((0, 0, int(frame.x * sx) - 12, int(frame.y * sy) - 12))
    assert crop.getextrema() != margin.getextrema()


@pytest.mark.parametrize("layout", list(Layout))
@pytest.mark.parametrize("paper", list(PAPERS))
def test_every_layout_and_paper(
    liechtenstein_url: str,
    renderer_for: Callable[[str], MapRenderer],
    paper: str,
    layout: Layout,
) -> None:
    renderer = renderer_for(liechtenstein_url)
    plan = plan_of(liechtenstein_url, "Planken", renderer, paper=paper, layout=layout, dpi=72)
    reader = pypdf.PdfReader(io.BytesIO(plan.documents[0]))
    assert len(reader.pages) == plan.page_count
    if layout is Layout.INDEX_PAGES:
        assert plan.page_count >= 2
    box = reader.pages[0].mediabox
    size_mm = sorted((float(box.width) * 25.4 / 72, float(box.height) * 25.4 / 72))
    assert size_mm == pytest.approx(sorted(PAPERS[paper]), abs=0.5)
    text = flat(" ".join(pdf_text(plan.documents[0])))
    assert "Planken" in text and "Index des rues" in text


def test_png_output(liechtenstein_url: str, renderer_for: Callable[[str], MapRenderer]) -> None:
    renderer = renderer_for(liechtenstein_url)
    plan = plan_of(liechtenstein_url, "Planken", renderer, paper="A4", format="png", dpi=100,
                   orientation=Orientation.PORTRAIT)  # fmt: skip
    image = Image.open(io.BytesIO(plan.documents[0]))
    assert image.size == (round(210 / 25.4 * 100), round(297 / 25.4 * 100))
    assert len(image.convert("L").getcolors(maxcolors=100000) or []) > 50


def test_long_index_flows_onto_more_pages(
    liechtenstein_url: str, renderer_for: Callable[[str], MapRenderer]
) -> None:
    renderer = renderer_for(liechtenstein_url)
    plan = plan_of(liechtenstein_url, "Vaduz", renderer, paper="A4", layout=Layout.INDEX_BELOW,
                   dpi=72, orientation=Orientation.PORTRAIT)  # fmt: skip
    assert plan.page_count >= 2
    pages = [flat(t) for t in pdf_text(plan.documents[0])]
    last = plan.streets[-1].display
    assert last not in pages[0]
    assert any(last in page for page in pages[1:])


def test_mulhouse_by_bbox(
    mulhouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FONDPLAN_DATABASE_URL", mulhouse_url)
    assert main(["townplan", "--insee", "68224", "-o", str(tmp_path / "m.pdf")]) == 1
    assert "--bbox" in capsys.readouterr().err
    out = tmp_path / "plan.pdf"
    bbox = "7.30,47.72,7.33,47.74"
    assert (
        main(["townplan", "--bbox", bbox, "--title", "Mulhouse — Brunstatt", "-o", str(out)]) == 0
    )
    text = flat(" ".join(pdf_text(out.read_bytes())))
    assert "Mulhouse — Brunstatt" in text and ATTRIBUTION in text
    # A box without data is an error, not an empty plan.
    empty = ["townplan", "--bbox", "7.50,47.50,7.51,47.51", "-o", str(tmp_path / "e.pdf")]
    capsys.readouterr()
    assert main(empty) == 1
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "e.pdf").exists()
    conn = psycopg2.connect(mulhouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT DISTINCT name FROM osm.street_labels
            WHERE name <> '' AND kind IN ('residential', 'tertiary', 'secondary', 'primary')
              AND ST_Intersects(
                geom, ST_Transform(ST_MakeEnvelope(7.30, 47.72, 7.33, 47.74, 4326), 3857)
              )
            """
        )
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    assert names
    assert [n for n in names if len(n) <= 24 and n not in text] == []


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_map_shows_print_style_colours(vaduz_a3: tuple[Path, Plan], tmp_path: Path) -> None:
    """The map body is MapLibre Native's drawing of styles/print.json, unfaded in the commune."""
    path, _ = vaduz_a3
    style = json.loads((Path(__file__).resolve().parents[2] / "styles" / "print.json").read_text())
    paint = {layer["id"]: layer.get("paint", {}) for layer in style["layers"]}
    forest = _hex(paint["land-forest"]["fill-color"])
    meadows = _hex(paint["land-grass"]["fill-color"])
    image, frame, (sx, sy) = _a3_first_page(path, tmp_path, dpi=100, mode="RGB")
    inside = _inside(image, frame, (sx, sy), inset=3)
    outside = image.crop((0, 0, image.width, int(frame.y * sy) - 3))
    pixels = list(inside.getdata())

    def share(colour: tuple[int, int, int], among: list[tuple[int, int, int]]) -> float:
        near = sum(1 for p in among if max(abs(a - b) for a, b in zip(p, colour, strict=True)) <= 4)
        return near / len(among)

    # Vaduz's forests and meadows in the style's own colours, and none of them off the map.
    assert share(forest, pixels) > 0.02
    assert share(meadows, pixels) > 0.001
    assert share(forest, list(outside.getdata())) == 0
    # Around the commune the same forest is faded towards white.
    faded = tuple(round(c + (255 - c) * 0.62) for c in forest)
    assert share(faded, pixels) > 0.02  # type: ignore[arg-type]

"""Glyph PBFs built from the installed fonts, decoded with protobuf."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import freetype
import numpy as np
import pytest
from PIL import Image

from tests.tileserver.glyph_proto import decode
from tileserver.diskcache import unseal
from tileserver.glyphs import (
    BUFFER,
    SIZE,
    FontNotFoundError,
    GlyphBuilder,
    GlyphRangeError,
    available_fonts,
    glyph_range,
)

REGULAR = "Noto Sans Regular"
FALLBACK = "DejaVu Sans Book"
#: MapLibre lays a line out in a 24 px em with the baseline 17 px below its top
#: (SHAPING_DEFAULT_OFFSET in maplibre-gl-js src/symbol/shaping.ts), calibrated on a font whose
#: ascender is 25 px at 24 px; glyph servers write ``top`` relative to that ascender.
MAPLIBRE_LINE_HEIGHT = 24
MAPLIBRE_BASELINE_OFFSET = -17
MAPLIBRE_ASCENDER = 25


def _font_path(name: str) -> Path:
    builder = GlyphBuilder()
    (font,) = builder.resolve(name)
    return font.path


def _glyphs_for(fontstack: str, text: str) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for start in sorted({ord(ch) // 256 * 256 for ch in text}):
        message = decode(glyph_range(fontstack, start, start + 255))
        assert len(message.stacks) == 1
        assert message.stacks[0].range == f"{start}-{start + 255}"
        found.update({glyph.id: glyph for glyph in message.stacks[0].glyphs})
    return found


@pytest.mark.parametrize("text", ["Liechtenstein", "Zürich Mühlhausen Œuvre"])
def test_range_holds_every_glyph_of_the_text(text: str) -> None:
    glyphs = _glyphs_for(REGULAR, text)
    for ch in text:
        glyph = glyphs[ord(ch)]
        assert glyph.advance > 0, ch
        if ch == " ":
            continue
        assert glyph.width > 0 and glyph.height > 0, ch
        side = (glyph.width + 2 * BUFFER) * (glyph.height + 2 * BUFFER)
        assert len(glyph.bitmap) == side, ch
        values = np.frombuffer(glyph.bitmap, dtype=np.uint8)
        # The SDF edge sits at 192: inside pixels above it, the buffer ring well below.
        assert (values >= 192).any() and (values < 128).any(), ch


def test_sdf_inside_area_matches_freetype_coverage() -> None:
    """The pixels inside the distance field's edge cover what FreeType fills at 24 px."""
    face = freetype.Face(str(_font_path(REGULAR)))
    face.set_char_size(SIZE * 64)
    glyphs = _glyphs_for(REGULAR, "LHMWOÉ")
    for ch, glyph in ((ch, glyphs[ord(ch)]) for ch in "LHMWOÉ"):
        face.load_char(ch, freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
        bitmap = face.glyph.bitmap
        coverage = np.array(bitmap.buffer, dtype=float).sum() / 255
        inside = (np.frombuffer(glyph.bitmap, dtype=np.uint8) >= 192).sum()
        assert inside == pytest.approx(coverage, rel=0.2), ch
        # Metrics agree with FreeType's placement within a pixel (top below MapLibre's ascender).
        assert abs(glyph.top - (face.glyph.bitmap_top - MAPLIBRE_ASCENDER)) <= 1, ch
        assert abs(glyph.left - face.glyph.bitmap_left) <= 1, ch
        assert abs(glyph.advance - face.glyph.advance.x / 64) <= 1, ch


def test_merged_fontstack_takes_the_first_font_that_has_a_glyph() -> None:
    start = 0x2600  # miscellaneous symbols: DejaVu has many that Noto Sans lacks
    first = freetype.Face(str(_font_path(REGULAR)))
    second = freetype.Face(str(_font_path(FALLBACK)))
    codepoints = range(start, start + 256)
    in_first = {cp for cp in codepoints if first.get_char_index(cp)}
    in_second = {cp for cp in codepoints if second.get_char_index(cp)}
    assert in_second - in_first, "the test needs glyphs only the fallback font has"

    merged = decode(glyph_range(f"{REGULAR},{FALLBACK}", start, start + 255)).stacks[0]
    only_first = decode(glyph_range(REGULAR, start, start + 255)).stacks[0]
    only_second = decode(glyph_range(FALLBACK, start, start + 255)).stacks[0]
    ids = [glyph.id for glyph in merged.glyphs]
    assert ids == sorted(in_first | in_second)
    by_first = {glyph.id: glyph for glyph in only_first.glyphs}
    by_second = {glyph.id: glyph for glyph in only_second.glyphs}
    for glyph in merged.glyphs:
        expected = by_first.get(glyph.id) or by_second[glyph.id]
        assert glyph == expected


def test_range_the_font_lacks_is_an_empty_valid_pbf() -> None:
    start = 0xAC00  # Hangul syllables
    face = freetype.Face(str(_font_path(REGULAR)))
    assert not any(face.get_char_index(cp) for cp in range(start, start + 256))
    message = decode(glyph_range(REGULAR, start, start + 255))
    assert [stack.range for stack in message.stacks] == [f"{start}-{start + 255}"]
    assert len(message.stacks[0].glyphs) == 0


def test_font_names_are_found_in_either_spelling() -> None:
    fonts = available_fonts()
    assert REGULAR in fonts and FALLBACK in fonts
    assert glyph_range("noto_sans_regular", 0, 255) == glyph_range(REGULAR, 0, 255)


def test_unknown_font_is_a_clear_error() -> None:
    with pytest.raises(FontNotFoundError, match="Comic Nope Regular"):
        glyph_range("Comic Nope Regular", 0, 255)
    # An unknown fallback is skipped while a known font answers.
    assert glyph_range(f"Comic Nope Regular,{REGULAR}", 0, 255) == glyph_range(REGULAR, 0, 255)


@pytest.mark.parametrize(("start", "end"), [(1, 256), (0, 511), (-256, -1), (65536, 65791)])
def test_range_not_a_256_block_is_refused(start: int, end: int) -> None:
    with pytest.raises(GlyphRangeError):
        glyph_range(REGULAR, start, end)


def test_disk_cache_serves_the_same_bytes(tmp_path: Path) -> None:
    built = GlyphBuilder(cache_dir=tmp_path).glyph_range(REGULAR, 256, 511)
    files = list(tmp_path.rglob("256-511.pbf"))
    assert len(files) == 1 and unseal(files[0].read_bytes()) == (b"", built)
    # A fresh builder (a restarted server) reads it back instead of rendering.
    assert GlyphBuilder(cache_dir=tmp_path).glyph_range(REGULAR, 256, 511) == built
    assert decode(built).stacks[0].glyphs[0].id >= 256


@pytest.mark.parametrize("fontstack", [REGULAR, FALLBACK, "Noto Sans Italic", "Noto Sans Bold"])
def test_metrics_follow_the_maplibre_conventions(fontstack: str) -> None:
    """width/height/left/top/advance are what MapLibre's shaping expects for FreeType's glyphs."""
    face = freetype.Face(str(_font_path(fontstack)))
    face.set_char_size(SIZE * 64)
    text = "HEgtaöBj,-Q"
    glyphs = _glyphs_for(fontstack, text)
    for ch in text:
        glyph = glyphs[ord(ch)]
        face.load_char(ch, freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
        slot = face.glyph
        assert len(glyph.bitmap) == (glyph.width + 2 * BUFFER) * (glyph.height + 2 * BUFFER), ch
        assert abs(glyph.width - slot.bitmap.width) <= 1, ch
        assert abs(glyph.height - slot.bitmap.rows) <= 1, ch
        assert abs(glyph.left - slot.bitmap_left) <= 1, ch
        assert abs(glyph.top - (slot.bitmap_top - MAPLIBRE_ASCENDER)) <= 1, ch
        assert abs(glyph.advance - slot.metrics.horiAdvance / 64) <= 0.5, ch

    # Where MapLibre draws a glyph's ink in a one-line, centred label, relative to the anchor
    # (y down): centring shifts the pen by nothing, the quad starts ``top`` above the pen.
    def ink(ch: str) -> tuple[int, int]:
        glyph = glyphs[ord(ch)]
        return (
            MAPLIBRE_BASELINE_OFFSET - glyph.top,
            MAPLIBRE_BASELINE_OFFSET - glyph.top + glyph.height,
        )

    cap_top, baseline = ink("H")
    # Capitals straddle the anchor, so a line label sits on its line rather than beside it.
    assert abs((cap_top + baseline) / 2) <= 2.5
    assert 0 < baseline < MAPLIBRE_LINE_HEIGHT / 2
    # Every glyph of the font shares that baseline: descenders go below it, x-height above it.
    assert ink("g")[1] > baseline + 2 and ink("a")[0] > cap_top + 2
    assert abs(ink("E")[1] - baseline) <= 1 and abs(ink("B")[1] - baseline) <= 1


def test_merged_fontstack_glyphs_share_one_baseline() -> None:
    """A fallback font's glyphs sit on the same baseline as the first font's."""
    start = 0x2600
    first = freetype.Face(str(_font_path(REGULAR)))
    second = freetype.Face(str(_font_path(FALLBACK)))
    second.set_char_size(SIZE * 64)
    only_second = [cp for cp in range(start, start + 256) if second.get_char_index(cp)]
    only_second = [cp for cp in only_second if not first.get_char_index(cp)][:5]
    assert only_second, "the test needs glyphs only the fallback font has"
    merged = _glyphs_for(f"{REGULAR},{FALLBACK}", "H" + "".join(map(chr, only_second)))
    first.set_char_size(SIZE * 64)
    first.load_char("H", freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
    shift = merged[ord("H")].top - first.glyph.bitmap_top
    for cp in only_second:
        second.load_char(chr(cp), freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
        assert abs(merged[cp].top - second.glyph.bitmap_top - shift) <= 1, hex(cp)


def _render_line_label(text: str, coordinates: list[list[float]], size: int) -> np.ndarray:
    """RGB pixels of MapLibre Native drawing ``text`` along a red line, with our glyphs."""
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    import mapli

    def fonts(request: mapli.ResourceRequest) -> bytes:
        fontstack, _, file = request.url.split("://", 1)[1].removeprefix("fonts/").rpartition("/")
        start, _, end = file.removesuffix(".pbf").partition("-")
        return glyph_range(unquote(fontstack), int(start), int(end))

    mapli.register_scheme_handler("glyphtest", fonts)
    line = {"type": "LineString", "coordinates": coordinates}
    style = {
        "version": 8,
        "glyphs": "glyphtest://fonts/{fontstack}/{range}.pbf",
        "sources": {"line": {"type": "geojson", "data": line}},
        "layers": [
            {"id": "bg", "type": "background", "paint": {"background-color": "#ffffff"}},
            {
                "id": "line",
                "type": "line",
                "source": "line",
                "paint": {"line-color": "#ff0000", "line-width": 3},
            },
            {
                "id": "label",
                "type": "symbol",
                "source": "line",
                "layout": {
                    "symbol-placement": "line",
                    "symbol-spacing": 250,
                    "text-field": text,
                    "text-font": [REGULAR],
                    "text-size": size,
                },
                "paint": {"text-color": "#000000"},
            },
        ],
    }
    pool = mapli.RenderPool(workers=1)
    pool.register_style("label", json=json.dumps(style))
    lons = [point[0] for point in coordinates]
    lats = [point[1] for point in coordinates]
    png = pool.render(
        "label",
        lon=(min(lons) + max(lons)) / 2,
        lat=(min(lats) + max(lats)) / 2,
        zoom=16,
        width=600,
        height=200,
    )
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_line_label_sits_on_its_line() -> None:
    """MapLibre Native centres a line label's capitals on the line (not a line height above)."""
    size = 24
    pixels = _render_line_label("Balzers Vaduz", [[0.001, 0.001], [0.004, 0.001]], size)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    line_rows = np.nonzero(((red > 200) & (red - green > 120) & (red - blue > 120)).any(axis=1))[0]
    ink_rows = np.nonzero(((red < 100) & (green < 100) & (blue < 100)).any(axis=1))[0]
    assert len(line_rows) and len(ink_rows), "nothing drawn"
    line_y = line_rows.mean()
    # The text has no descenders: its ink runs from the cap height down to the baseline.
    cap_top, baseline = ink_rows.min(), ink_rows.max()
    assert 0.6 * size < baseline - cap_top + 1 < 0.8 * size
    assert abs((cap_top + baseline) / 2 - line_y) <= 3

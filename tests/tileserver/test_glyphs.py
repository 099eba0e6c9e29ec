"""Glyph PBFs built from the installed fonts, decoded with protobuf."""

from __future__ import annotations

from pathlib import Path

import freetype
import numpy as np
import pytest
from glyph_proto import decode

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


def _font_path(name: str) -> Path:
    builder = GlyphBuilder()
    (font,) = builder.resolve(name)
    return font.path


def _glyphs_for(fontstack: str, text: str) -> dict[int, object]:
    found: dict[int, object] = {}
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
        # Metrics agree with FreeType's placement within a pixel.
        assert abs(glyph.top - face.glyph.bitmap_top) <= 1, ch
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
    assert len(files) == 1 and files[0].read_bytes() == built
    # A fresh builder (a restarted server) reads it back instead of rendering.
    assert GlyphBuilder(cache_dir=tmp_path).glyph_range(REGULAR, 256, 511) == built
    assert decode(built).stacks[0].glyphs[0].id >= 256

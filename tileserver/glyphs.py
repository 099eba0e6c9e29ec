"""MapLibre glyph PBFs (SDF, 256-codepoint ranges) built from the installed open fonts."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import freetype

from osmimport.errors import FondplanError
from osmimport.lru import LRUCache
from tileserver.diskcache import read_sealed, write_sealed
from tileserver.errors import BadRequest, NotFound
from tileserver.settings import DEFAULT_FONT_DIRS

#: The fontnik / sdf-glyph-foundry conventions MapLibre expects from a glyph server.
SIZE = 24
BUFFER = 3
RADIUS = 8
CUTOFF = 0.25
RANGE_SIZE = 256
MAX_CODEPOINT = 65535
#: MapLibre's shaping puts the baseline a fixed 17 px below the top of a 24 px line
#: (SHAPING_DEFAULT_OFFSET), calibrated on a font whose ascender is about 25 px at 24 px. A
#: glyph's ``top`` is therefore its bitmap top above the baseline minus this ascender (fontnik
#: subtracts the face's ascender). One constant for every font keeps the baselines of a merged
#: fontstack aligned.
ASCENDER = 25
#: Outlines are rasterised this many times larger, then the distance field is sampled down.
OVERSAMPLE = 4
#: Bumped when the bitmaps change, so old disk caches are not served.
FORMAT_VERSION = 2
#: Fonts a fontstack may name, and its length in characters: MapLibre styles name one to three
#: (a font and its fallbacks); more is refused with 400 rather than built.
MAX_FONTSTACK_FONTS = 4
MAX_FONTSTACK_LENGTH = 256
#: Fontstacks (font combinations) kept in the disk cache; the least recently used go first.
MAX_DISK_FONTSTACKS = 64

FONT_SUFFIXES = (".ttf", ".otf")

#: Ranges the bundled styles need for French, German and English labels: Basic Latin and
#: Latin-1, Latin Extended-A (Œ, ł, č…), general punctuation (’ – …).
LATIN_RANGES = (0, 256, 8192)


class GlyphError(FondplanError):
    """A glyph request that cannot be answered."""


class FontNotFoundError(GlyphError, NotFound):
    """None of the fonts of a fontstack is installed (the server answers 404)."""


class GlyphRangeError(GlyphError, BadRequest):
    """A glyph range is not one of the 256-codepoint blocks (the server answers 400)."""


class FontstackError(GlyphError, BadRequest):
    """A fontstack naming too many fonts or too long (the server answers 400)."""


@dataclass(frozen=True)
class FontFile:
    """An installed font face, named as MapLibre fontstacks name it: family and style."""

    name: str
    path: Path


def font_key(name: str) -> str:
    """The lookup key of a font name: "Noto Sans Regular" and "noto_sans_regular" are one font."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def check_range(start: int, end: int) -> None:
    """Raise GlyphRangeError unless ``start-end`` is a 256-codepoint block of the BMP."""
    if start < 0 or start % RANGE_SIZE or end != start + RANGE_SIZE - 1 or end > MAX_CODEPOINT:
        raise GlyphRangeError(
            f"glyph range {start}-{end} is not a block of {RANGE_SIZE} codepoints "
            f"(e.g. 0-255, 256-511) below {MAX_CODEPOINT + 1}"
        )


def scan_fonts(font_dirs: Iterable[Path]) -> dict[str, FontFile]:
    """Every scalable TTF/OTF face under ``font_dirs``, keyed by font_key of "Family Style"."""
    fonts: dict[str, FontFile] = {}
    for directory in font_dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if path.suffix.lower() not in FONT_SUFFIXES or not path.is_file():
                continue
            try:
                face = freetype.Face(str(path))
            except freetype.FT_Exception:
                continue
            if not face.is_scalable or not face.family_name:
                continue
            family = face.family_name.decode("utf-8", "replace")
            style = (face.style_name or b"Regular").decode("utf-8", "replace")
            name = f"{family} {style}"
            fonts.setdefault(font_key(name), FontFile(name, path))
    return fonts


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_sint(number: int, value: int) -> bytes:
    return _field_varint(number, (value << 1) ^ (value >> 63))


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(value)) + value


def encode_glyph(
    codepoint: int, bitmap: bytes, width: int, height: int, left: int, top: int, advance: int
) -> bytes:
    """One ``glyph`` message of glyphs.proto (id, bitmap, width, height, left, top, advance)."""
    parts = [_field_varint(1, codepoint)]
    if bitmap:
        parts.append(_field_bytes(2, bitmap))
    parts += [
        _field_varint(3, width),
        _field_varint(4, height),
        _field_sint(5, left),
        _field_sint(6, top),
        _field_varint(7, advance),
    ]
    return b"".join(parts)


def encode_range(name: str, start: int, end: int, glyphs: Iterable[bytes]) -> bytes:
    """A ``glyphs`` message holding one ``fontstack`` with the encoded glyph messages."""
    stack = _field_bytes(1, name.encode()) + _field_bytes(2, f"{start}-{end}".encode())
    stack += b"".join(_field_bytes(3, glyph) for glyph in glyphs)
    return _field_bytes(1, stack)


def render_glyph(face: freetype.Face, codepoint: int) -> bytes | None:
    """The encoded SDF glyph of ``codepoint``, or None when the face has no glyph for it.

    ``face`` must be sized at SIZE * OVERSAMPLE pixels.
    """
    # Imported here: a process serving glyphs from the disk cache never needs them (0.6 s).
    import numpy as np
    from scipy import ndimage

    index = face.get_char_index(codepoint)
    if not index:
        return None
    face.load_glyph(index, freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
    slot = face.glyph
    advance = round(slot.metrics.horiAdvance / 64 / OVERSAMPLE)
    bitmap = slot.bitmap
    if bitmap.width == 0 or bitmap.rows == 0:
        return encode_glyph(codepoint, b"", 0, 0, 0, 0, advance)
    rows, cols, pitch = bitmap.rows, bitmap.width, bitmap.pitch
    coverage = np.frombuffer(bytes(bitmap.buffer), dtype=np.uint8).reshape(rows, pitch)[:, :cols]
    hi_left, hi_top = slot.bitmap_left, slot.bitmap_top

    left = math.floor(hi_left / OVERSAMPLE)
    right = math.ceil((hi_left + cols) / OVERSAMPLE)
    top = math.ceil(hi_top / OVERSAMPLE)
    bottom = math.floor((hi_top - rows) / OVERSAMPLE)
    width, height = right - left, top - bottom

    pad = OVERSAMPLE * (BUFFER + 2)
    inside = np.zeros((rows + 2 * pad, cols + 2 * pad), dtype=bool)
    inside[pad : pad + rows, pad : pad + cols] = coverage >= 128
    # Distances in oversampled pixels to the nearest pixel on the other side of the outline.
    outside_distance = ndimage.distance_transform_edt(~inside)
    inside_distance = ndimage.distance_transform_edt(inside)
    signed = np.where(inside, 0.5 - inside_distance, outside_distance - 0.5) / OVERSAMPLE

    # Sample at the centres of the output pixels: x from left - BUFFER, y down from top + BUFFER.
    cols_out = np.arange(width + 2 * BUFFER)
    rows_out = np.arange(height + 2 * BUFFER)
    hi_x = OVERSAMPLE * (left - BUFFER + cols_out) + OVERSAMPLE // 2 - hi_left + pad
    hi_y = hi_top - (OVERSAMPLE * (top + BUFFER - rows_out) - OVERSAMPLE // 2) + pad
    sampled = signed[np.ix_(hi_y, hi_x)]
    values = 255 - np.clip(sampled * 256 / RADIUS + CUTOFF * 256, 0, 255)
    sdf = values.astype(np.uint8).tobytes()
    return encode_glyph(codepoint, sdf, width, height, left, top - ASCENDER, advance)


def _font_stamp(font: FontFile) -> str:
    stat = font.path.stat()
    return f"{font.path}:{stat.st_size}:{stat.st_mtime_ns}"


class GlyphBuilder:
    """Builds and caches glyph ranges; one instance per server, safe to share between threads."""

    def __init__(
        self,
        font_dirs: Sequence[Path] | None = None,
        cache_dir: Path | None = None,
        memory_ranges: int = 256,
        disk_fontstacks: int = MAX_DISK_FONTSTACKS,
    ) -> None:
        self.font_dirs = tuple(font_dirs) if font_dirs is not None else DEFAULT_FONT_DIRS
        self.cache_dir = cache_dir
        self.memory_ranges = memory_ranges
        self.disk_fontstacks = disk_fontstacks
        self._fonts: dict[str, FontFile] | None = None
        self._lock = threading.Lock()
        self._ranges: LRUCache[tuple[str, ...], bytes] = LRUCache(memory_ranges)
        self._font_ranges: LRUCache[tuple[str, int], dict[int, bytes]] = LRUCache(memory_ranges)

    def fonts(self) -> dict[str, FontFile]:
        """The installed fonts by key (scanned once)."""
        with self._lock:
            if self._fonts is None:
                self._fonts = scan_fonts(self.font_dirs)
            return self._fonts

    def available_fonts(self) -> list[str]:
        """The font names a fontstack may use, sorted."""
        return sorted(font.name for font in self.fonts().values())

    def resolve(self, fontstack: str) -> list[FontFile]:
        """The installed fonts of a comma-separated fontstack, in order; unknown ones skipped.

        Raises FontNotFoundError when none of them is installed, FontstackError when the
        fontstack is longer than MAX_FONTSTACK_LENGTH or names more than MAX_FONTSTACK_FONTS.
        """
        if len(fontstack) > MAX_FONTSTACK_LENGTH:
            raise FontstackError(
                f"the fontstack is {len(fontstack)} characters long; at most "
                f"{MAX_FONTSTACK_LENGTH} are accepted"
            )
        names = [name.strip() for name in fontstack.split(",") if name.strip()]
        if len(names) > MAX_FONTSTACK_FONTS:
            raise FontstackError(
                f"the fontstack names {len(names)} fonts; "
                f"at most {MAX_FONTSTACK_FONTS} are accepted"
            )
        fonts = self.fonts()
        found: list[FontFile] = []
        for name in names:
            font = fonts.get(font_key(name))
            if font is not None and font not in found:
                found.append(font)
        if not found:
            raise FontNotFoundError(
                f"no installed font in fontstack {fontstack!r}; "
                f"available fonts include {', '.join(self.available_fonts()[:8])}…"
            )
        return found

    def glyph_range(self, fontstack: str, start: int, end: int) -> bytes:
        """The glyph PBF of ``start-end`` for ``fontstack``; the first font with a glyph wins."""
        check_range(start, end)
        fonts = self.resolve(fontstack)
        key = (*(font_key(font.name) for font in fonts), str(start))
        cached = self._ranges.get(key)
        if cached is not None:
            return cached
        disk = self._disk_path(fonts, start, end)
        found = read_sealed(disk) if disk is not None else None
        if found is not None:
            data = found[1]
        else:
            merged: dict[int, bytes] = {}
            for font in fonts:
                for codepoint, glyph in self._font_range(font, start).items():
                    merged.setdefault(codepoint, glyph)
            name = ",".join(font.name for font in fonts)
            data = encode_range(name, start, end, (merged[cp] for cp in sorted(merged)))
            if disk is not None:
                write_sealed(disk, data)
                self._bound_disk(disk.parent)
        self._ranges.put(key, data)
        return data

    def prebuild(self, fontstacks: Iterable[str], starts: Iterable[int] = LATIN_RANGES) -> int:
        """Build (and cache) the given ranges of the given fontstacks; returns how many."""
        count = 0
        for fontstack in fontstacks:
            for start in starts:
                self.glyph_range(fontstack, start, start + RANGE_SIZE - 1)
                count += 1
        return count

    def _font_range(self, font: FontFile, start: int) -> dict[int, bytes]:
        key = (font_key(font.name), start)
        cached_glyphs = self._font_ranges.get(key)
        if cached_glyphs is not None:
            return cached_glyphs
        # A Face per build: FreeType faces must not be shared between threads.
        face = freetype.Face(str(font.path))
        face.set_char_size(SIZE * OVERSAMPLE * 64)
        glyphs: dict[int, bytes] = {}
        for codepoint in range(start, start + RANGE_SIZE):
            glyph = render_glyph(face, codepoint)
            if glyph is not None:
                glyphs[codepoint] = glyph
        self._font_ranges.put(key, glyphs)
        return glyphs

    def _disk_path(self, fonts: Sequence[FontFile], start: int, end: int) -> Path | None:
        if self.cache_dir is None:
            return None
        stamp = "|".join([str(FORMAT_VERSION), *(_font_stamp(font) for font in fonts)])
        # A digest, not the font names: a folder name stays short whatever the fontstack.
        digest = hashlib.sha1(stamp.encode()).hexdigest()[:20]
        return self.cache_dir / f"stack-{digest}" / f"{start}-{end}.pbf"

    def _bound_disk(self, written: Path) -> None:
        """Keep at most ``disk_fontstacks`` fontstack folders: the least recently written go."""
        if self.cache_dir is None:
            return
        try:
            written.touch()
            folders = [entry for entry in self.cache_dir.iterdir() if entry.is_dir()]
            if len(folders) <= self.disk_fontstacks:
                return
            folders.sort(key=lambda entry: entry.stat().st_mtime_ns)
            for folder in folders[: len(folders) - self.disk_fontstacks]:
                if folder != written:
                    shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            # Another process may prune at the same time; the cache only costs time.
            return


_builders: dict[tuple[Path | None, tuple[Path, ...]], GlyphBuilder] = {}
_default_lock = threading.Lock()


def builder_for(
    cache_dir: Path | None, font_dirs: Sequence[Path] = DEFAULT_FONT_DIRS
) -> GlyphBuilder:
    """The process-wide builder over the fonts of ``font_dirs`` caching on disk in ``cache_dir``
    (the settings' ``glyph_cache_dir()``; ``None``: in memory only)."""
    key = (cache_dir.resolve() if cache_dir is not None else None, tuple(font_dirs))
    with _default_lock:
        builder = _builders.get(key)
        if builder is None:
            builder = _builders[key] = GlyphBuilder(font_dirs=key[1], cache_dir=key[0])
        return builder


def default_builder() -> GlyphBuilder:
    """The process-wide builder over the default font folders, caching in memory only."""
    return builder_for(None)


def glyph_range(fontstack: str, start: int, end: int) -> bytes:
    """The glyph PBF of ``start-end`` for a comma-separated ``fontstack`` (system fonts)."""
    return default_builder().glyph_range(fontstack, start, end)


def available_fonts() -> list[str]:
    """The installed font names a fontstack may use."""
    return default_builder().available_fonts()

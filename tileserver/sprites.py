"""Sprite sheets (@1x, @2x) packed from the SVG icons in styles/icons, with their JSON index."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from osmimport.paths import styles_dir
from tileserver.diskcache import write_atomically
from tileserver.errors import BadRequest, NotFound

#: The sprite sheet of our icons; the styles name it ``fondplan://sprites/fondplan``.
SPRITE_NAME = "fondplan"
#: The same sheet indexed under VersaTiles' icon ids, for its Shortbread style (unchanged).
VERSATILES_SPRITE = "versatiles"
MAX_RATIO = 4
#: Transparent pixels between icons, so linear filtering never bleeds a neighbour in.
PADDING = 2
#: Bumped when the packing or the rendering changes, so old disk caches are not served.
FORMAT_VERSION = 1

#: Name prefix of the icons drawn from Maki glyphs (styles/icons/maki-*.svg).
MAKI_PREFIX = "maki-"

#: VersaTiles icon id -> our icon, for every icon and pattern id its style names.
VERSATILES_ALIASES: dict[str, str] = {
    "icon-art_gallery": "museum",
    "icon-artwork": "artwork",
    "icon-bakery": "bakery",
    "icon-bank": "bank",
    "icon-bar": "bar",
    "icon-beer_mug": "pub",
    "icon-bicycle_share": "bicycle_parking",
    "icon-cafe": "cafe",
    "icon-campsite": "campsite",
    "icon-caravan": "campsite",
    "icon-cemetery": "cemetery",
    "icon-cinema": "cinema",
    "icon-college": "college",
    "icon-dentist": "dentist",
    "icon-doctor": "doctor",
    "icon-drinking_water": "drinking_water",
    "icon-fast_food": "fast_food",
    "icon-fire_station": "fire_station",
    "icon-fuel_pump": "fuel",
    "icon-hospital": "hospital",
    "icon-latin_cross": "worship_christian",
    "icon-library": "library",
    "icon-lodging": "hotel",
    "icon-person_kneeling_and_praying": "worship",
    "icon-pill": "pharmacy",
    "icon-pint_glass": "pub",
    "icon-police_officer": "police",
    "icon-post": "post",
    "icon-postbox": "post",
    "icon-recycling": "recycling",
    "icon-restaurant": "restaurant",
    "icon-restrooms": "toilets",
    "icon-scissors_and_comb": "hairdresser",
    "icon-school": "school",
    "icon-seesaw": "playground",
    "icon-shop": "shop",
    "icon-sports": "sport",
    "icon-star_and_crescent": "worship_muslim",
    "icon-star_of_david": "worship_jewish",
    "icon-swimming": "swimming",
    "icon-theater": "theatre",
    "icon-town_hall": "townhall",
    "icon-viewpoint": "viewpoint",
    "icon-zoo": "zoo",
    "transport-information": "information",
    "transport-tram": "tram",
    "marking-oneway": "oneway",
    # Our own fill patterns (styles/icons/pattern-*.svg).
    "pattern-hatched": "pattern-hatched",
    "pattern-hatched_thin": "pattern-hatched_thin",
    "pattern-striped": "pattern-striped",
    # Maki glyphs (CC0) on our badge, written by scripts/make_maki_icons.py.
    "icon-airfield": MAKI_PREFIX + "airfield",
    "icon-airport": MAKI_PREFIX + "airport",
    "icon-alcohol_shop": MAKI_PREFIX + "alcohol-shop",
    "icon-amusement_park": MAKI_PREFIX + "amusement-park",
    "icon-atm": MAKI_PREFIX + "bank",
    "icon-beauty": MAKI_PREFIX + "hairdresser",
    "icon-bench": MAKI_PREFIX + "park-alt1",
    "icon-beverages": MAKI_PREFIX + "grocery",
    "icon-books": MAKI_PREFIX + "library",
    "icon-bus": MAKI_PREFIX + "bus",
    "icon-butcher": MAKI_PREFIX + "slaughterhouse",
    "icon-car_rental": MAKI_PREFIX + "car-rental",
    "icon-car_wash": MAKI_PREFIX + "car",
    "icon-castle": MAKI_PREFIX + "castle",
    "icon-chalet": MAKI_PREFIX + "lodging",
    "icon-clothes": MAKI_PREFIX + "clothing-store",
    "icon-community": MAKI_PREFIX + "residential-community",
    "icon-defibrillator": MAKI_PREFIX + "defibrillator",
    "icon-dharma_wheel": MAKI_PREFIX + "religious-buddhist",
    "icon-do_it_yourself": MAKI_PREFIX + "hardware",
    "icon-dog": MAKI_PREFIX + "dog-park",
    "icon-dry_cleaning": MAKI_PREFIX + "laundry",
    "icon-embassy": MAKI_PREFIX + "embassy",
    "icon-emergency_access": MAKI_PREFIX + "caution",
    "icon-emergency_phone": MAKI_PREFIX + "emergency-phone",
    "icon-florist": MAKI_PREFIX + "florist",
    "icon-fountain": MAKI_PREFIX + "water",
    "icon-furniture": MAKI_PREFIX + "furniture",
    "icon-garden_center": MAKI_PREFIX + "garden-centre",
    "icon-gift": MAKI_PREFIX + "gift",
    "icon-golf": MAKI_PREFIX + "golf",
    "icon-greengrocer": MAKI_PREFIX + "grocery",
    "icon-hardware": MAKI_PREFIX + "hardware",
    "icon-historic": MAKI_PREFIX + "historic",
    "icon-hunting_stand": MAKI_PREFIX + "observation-tower",
    "icon-hydrant": MAKI_PREFIX + "fire-station",
    "icon-ice_rink": MAKI_PREFIX + "skiing",
    "icon-justice": MAKI_PREFIX + "building-alt1",
    "icon-khanda": MAKI_PREFIX + "place-of-worship",
    "icon-laundry": MAKI_PREFIX + "laundry",
    "icon-lighthouse": MAKI_PREFIX + "lighthouse",
    "icon-marketplace": MAKI_PREFIX + "commercial",
    "icon-monument": MAKI_PREFIX + "monument",
    "icon-newsagent": MAKI_PREFIX + "shop",
    "icon-newspaper": MAKI_PREFIX + "shop",
    "icon-nightclub": MAKI_PREFIX + "nightclub",
    "icon-nursing_home": MAKI_PREFIX + "home",
    "icon-observation_tower": MAKI_PREFIX + "observation-tower",
    "icon-om": MAKI_PREFIX + "place-of-worship",
    "icon-optician": MAKI_PREFIX + "optician",
    "icon-outdoor": MAKI_PREFIX + "mountain",
    "icon-picnic_site": MAKI_PREFIX + "picnic-site",
    "icon-pitch": MAKI_PREFIX + "pitch",
    "icon-prison": MAKI_PREFIX + "prison",
    "icon-rail": MAKI_PREFIX + "rail",
    "icon-ring": MAKI_PREFIX + "jewelry-store",
    "icon-rocking_horse": MAKI_PREFIX + "playground",
    "icon-shelter": MAKI_PREFIX + "shelter",
    "icon-shoes": MAKI_PREFIX + "shoe",
    "icon-shrine": MAKI_PREFIX + "religious-shinto",
    "icon-stadium": MAKI_PREFIX + "stadium",
    "icon-stationery": MAKI_PREFIX + "paint",
    "icon-surveillance": MAKI_PREFIX + "caution",
    "icon-telephone": MAKI_PREFIX + "telephone",
    "icon-travel_agent": MAKI_PREFIX + "suitcase",
    "icon-tube_and_toothbrush": MAKI_PREFIX + "pharmacy",
    "icon-vending_machine": MAKI_PREFIX + "convenience",
    "icon-veterinary": MAKI_PREFIX + "veterinary",
    "icon-video": MAKI_PREFIX + "cinema",
    "icon-waste_basket": MAKI_PREFIX + "waste-basket",
    "icon-wastewater": MAKI_PREFIX + "water",
    "icon-water_park": MAKI_PREFIX + "swimming",
    "icon-watermill": MAKI_PREFIX + "watermill",
    "icon-waterworks": MAKI_PREFIX + "water",
    "icon-windmill": MAKI_PREFIX + "windmill",
    "icon-yin_yang": MAKI_PREFIX + "place-of-worship",
}


class SpriteError(BadRequest):
    """A sprite request that cannot be answered (bad ratio: the server answers 400)."""


class SpriteNotFoundError(NotFound, SpriteError):
    """No sprite sheet of that name (the server answers 404)."""


def icons_dir() -> Path:
    """The folder of the SVG icons the sprite sheets are built from."""
    return styles_dir() / "icons"


def _svg_size(svg: bytes) -> tuple[float, float]:
    root = ET.fromstring(svg)
    width, height = root.get("width"), root.get("height")
    if width and height:
        return float(re.sub(r"px$", "", width)), float(re.sub(r"px$", "", height))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(box) != 4:
        raise SpriteError("an icon SVG needs width/height or a viewBox")
    return float(box[2]), float(box[3])


def render_icon(svg: bytes, ratio: int) -> Image.Image:
    """The icon at ``ratio`` times its nominal pixel size, as an RGBA image."""
    # Imported here: a process reading the sheets from the disk cache never needs it.
    import cairosvg

    width, height = _svg_size(svg)
    png = cairosvg.svg2png(
        bytestring=svg,
        output_width=round(width * ratio),
        output_height=round(height * ratio),
    )
    image = Image.open(io.BytesIO(png))
    return image.convert("RGBA")


@dataclass(frozen=True)
class SpriteSheet:
    """A packed sheet: the PNG bytes and the index of icon rectangles."""

    index: dict[str, dict[str, int]]
    png: bytes

    def json_bytes(self) -> bytes:
        """The sprite JSON MapLibre reads."""
        return json.dumps(self.index, sort_keys=True, separators=(",", ":")).encode()


def pack(images: dict[str, Image.Image], ratio: int) -> SpriteSheet:
    """Shelf-pack ``images`` (tallest first) into one sheet.

    The layout is computed in 1x pixels and scaled by ``ratio``, so the @2x sheet is exactly
    twice the @1x one, rectangle for rectangle.
    """
    nominal = {
        name: (-(-img.width // ratio), -(-img.height // ratio)) for name, img in images.items()
    }
    order = sorted(nominal, key=lambda name: (-nominal[name][1], name))
    total_area = sum((w + PADDING) * (h + PADDING) for w, h in nominal.values())
    widest = max((w for w, _ in nominal.values()), default=1) + PADDING
    row_width = max(widest, min(1024, int(total_area**0.5 * 1.2) + 1))
    places: dict[str, tuple[int, int]] = {}
    x = y = shelf = 0
    for name in order:
        w, h = nominal[name]
        if x + w > row_width:
            x, y, shelf = 0, y + shelf + PADDING, 0
        places[name] = (x, y)
        x += w + PADDING
        shelf = max(shelf, h)
    width = max((places[n][0] + nominal[n][0] for n in nominal), default=1) * ratio
    height = max((places[n][1] + nominal[n][1] for n in nominal), default=1) * ratio
    sheet = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    index: dict[str, dict[str, int]] = {}
    for name, (px, py) in places.items():
        img = images[name]
        sheet.paste(img, (px * ratio, py * ratio))
        index[name] = {
            "x": px * ratio,
            "y": py * ratio,
            "width": img.width,
            "height": img.height,
            "pixelRatio": ratio,
        }
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return SpriteSheet(index, out.getvalue())


def icons_key(icons: Path) -> str:
    """A digest of the icon SVGs (names and contents) and FORMAT_VERSION: the disk cache key.

    Editing, adding, removing or renaming an icon changes it, so a stale sheet is never read.
    """
    digest = hashlib.sha256(f"fondplan-sprites:{FORMAT_VERSION}:{PADDING}".encode())
    for path in sorted(icons.glob("*.svg")):
        digest.update(b"\0" + path.stem.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


class SpriteBuilder:
    """Builds each (name, ratio) sheet once and keeps it; safe to share between threads.

    With a ``cache_dir`` the sheets drawn from the SVGs are kept on disk under a key of the
    icons' contents, so a fresh process (a render process, a restarted server) reads them
    instead of drawing every icon again.
    """

    def __init__(self, icons: Path | None = None, cache_dir: Path | None = None) -> None:
        self.icons = icons if icons is not None else icons_dir()
        self.cache_dir = cache_dir
        #: Sheets drawn from the SVGs by this builder (not read from memory or disk).
        self.builds = 0
        self._key: str | None = None
        self._sheets: dict[tuple[str, int], SpriteSheet] = {}
        self._lock = threading.Lock()

    def icon_names(self) -> list[str]:
        """The names of our icons (SVG file stems), sorted."""
        return sorted(path.stem for path in self.icons.glob("*.svg"))

    def names(self) -> list[str]:
        """The sprite sheet names this server answers."""
        return [SPRITE_NAME, VERSATILES_SPRITE]

    def key(self) -> str:
        """The disk cache key of the icons (computed once per builder)."""
        with self._lock:
            return self._key_locked()

    def sheet(self, name: str, ratio: int) -> SpriteSheet:
        """The sheet ``name`` at ``ratio`` (1 for @1x, 2 for @2x), built on first use."""
        if name not in self.names():
            raise SpriteNotFoundError(
                f"no sprite named {name!r}; available: {', '.join(self.names())}"
            )
        if not 1 <= ratio <= MAX_RATIO:
            raise SpriteError(f"sprite pixel ratio must be 1 to {MAX_RATIO}, not {ratio}")
        with self._lock:
            return self._sheet_locked(name, ratio)

    def disk_paths(self, ratio: int) -> tuple[Path, Path] | None:
        """The cache files (JSON index, PNG) of our sheet at ``ratio``; None without a cache."""
        with self._lock:
            return self._paths_locked(ratio)

    def _paths_locked(self, ratio: int) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        folder = self.cache_dir / f"{SPRITE_NAME}-{self._key_locked()}"
        return folder / f"@{ratio}x.json", folder / f"@{ratio}x.png"

    def _key_locked(self) -> str:
        if self._key is None:
            self._key = icons_key(self.icons)
        return self._key

    def _sheet_locked(self, name: str, ratio: int) -> SpriteSheet:
        key = (name, ratio)
        built = self._sheets.get(key)
        if built is None:
            built = self._build(name, ratio)
            self._sheets[key] = built
        return built

    def _build(self, name: str, ratio: int) -> SpriteSheet:
        if name == VERSATILES_SPRITE:
            ours = self._sheet_locked(SPRITE_NAME, ratio)
            index = {
                alias: ours.index[icon]
                for alias, icon in VERSATILES_ALIASES.items()
                if icon in ours.index
            }
            return SpriteSheet(index, ours.png)
        paths = self._paths_locked(ratio)
        if paths is not None:
            cached = _read_cached(*paths)
            if cached is not None:
                return cached
        images = {
            path.stem: render_icon(path.read_bytes(), ratio)
            for path in sorted(self.icons.glob("*.svg"))
        }
        built = pack(images, ratio)
        self.builds += 1
        if paths is not None:
            # The PNG first: a reader takes the JSON as the sign that both are complete.
            write_atomically(paths[1], built.png)
            write_atomically(paths[0], built.json_bytes())
        return built


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_cached(json_path: Path, png_path: Path) -> SpriteSheet | None:
    """The cached sheet, or None when it is missing or unreadable (then it is rebuilt)."""
    try:
        index = json.loads(json_path.read_bytes())
        png = png_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or not png.startswith(_PNG_SIGNATURE):
        return None
    return SpriteSheet(index, png)


_builders: dict[Path | None, SpriteBuilder] = {}
_default_lock = threading.Lock()


def builder_for(cache_dir: Path | None) -> SpriteBuilder:
    """The process-wide builder over the bundled icons caching on disk in ``cache_dir``."""
    key = cache_dir.resolve() if cache_dir is not None else None
    with _default_lock:
        builder = _builders.get(key)
        if builder is None:
            builder = _builders[key] = SpriteBuilder(cache_dir=key)
        return builder


def sprite(name: str, ratio: int, cache_dir: Path | None = None) -> tuple[bytes, bytes]:
    """The sprite ``name`` at ``ratio``: (JSON index, PNG sheet), kept on disk in ``cache_dir``
    (the settings' ``sprite_cache_dir()``, shared by the server and its render processes)."""
    sheet = builder_for(cache_dir).sheet(name, ratio)
    return sheet.json_bytes(), sheet.png

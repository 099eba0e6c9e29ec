"""Reading MapLibre styles: where they are, their colours, and the legend they imply."""

from __future__ import annotations

import colorsys
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cities.errors import CitiesError

#: Style used for plans when it exists (written for MapLibre Native).
PRINT_STYLE = "print"

RGB = tuple[float, float, float]

_NAMED = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "transparent": None}
_FUNC = re.compile(r"(rgba?|hsla?)\(([^)]*)\)")


def style_dirs() -> list[Path]:
    """Where style JSON files are looked up: the repository's styles/, or the installed copy."""
    here = Path(__file__).resolve().parent
    dirs = [here.parent / "styles"]
    try:
        dirs.append(Path(str(resources.files("fondplan_styles"))))
    except ModuleNotFoundError:
        pass
    return dirs


def find_style(name: str) -> Path | None:
    """The path of style ``name`` (``print`` → styles/print.json), or None when absent."""
    candidate = Path(name)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    for folder in style_dirs():
        path = folder / f"{name}.json"
        if path.is_file():
            return path
    return None


def builtin_style() -> dict[str, Any]:
    """The built-in style of the cairo map renderer."""
    text = resources.files("cities").joinpath("fallback_style.json").read_text(encoding="utf-8")
    style: dict[str, Any] = json.loads(text)
    return style


def load_style(name: str) -> dict[str, Any]:
    """Style ``name`` as a dict; the built-in one when ``name`` is "builtin"."""
    if name == "builtin":
        return builtin_style()
    path = find_style(name)
    if path is None:
        raise CitiesError(f"style {name!r} not found")
    style: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return style


def parse_colour(value: Any) -> RGB | None:
    """An (r, g, b) in 0..1 from a CSS colour string; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) in (3, 4):
            digits = "".join(ch * 2 for ch in digits[:3])
        if len(digits) in (6, 8):
            try:
                return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]
            except ValueError:
                return None
        return None
    match = _FUNC.fullmatch(text)
    if not match:
        return None
    parts = [p.strip().rstrip("%") for p in match.group(2).split(",")]
    try:
        numbers = [float(p) for p in parts[:3]]
    except ValueError:
        return None
    if match.group(1).startswith("rgb"):
        return (numbers[0] / 255, numbers[1] / 255, numbers[2] / 255)
    return colorsys.hls_to_rgb(numbers[0] / 360, numbers[2] / 100, numbers[1] / 100)


def first_colour(value: Any) -> RGB | None:
    """The colour of a paint value: a plain colour, or the last colour of an expression.

    The last colour of an interpolate/step/match is the one used at the high zooms plans print at.
    """
    colour = parse_colour(value)
    if colour is not None or not isinstance(value, list):
        return colour
    found: RGB | None = None
    for item in value:
        candidate = first_colour(item)
        if candidate is not None:
            found = candidate
    return found


def paint_number(value: Any, default: float) -> float:
    """A width or opacity: the number itself, or the last number output of an expression."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and value[0] in ("interpolate", "step"):
        outputs = value[4::2] if value[0] == "interpolate" else value[2::2] or value[1:2]
        for item in reversed(outputs):
            if isinstance(item, int | float):
                return float(item)
    return default


def filter_values(expression: Any) -> set[str]:
    """Every string literal of a filter (the kinds it selects, roughly)."""
    values: set[str] = set()
    if isinstance(expression, str):
        values.add(expression)
    elif isinstance(expression, list):
        for item in expression:
            values |= filter_values(item)
    return values


@dataclass(frozen=True)
class StyleLayer:
    """What the cairo renderer and the legend need from one style layer."""

    id: str
    type: str
    source_layer: str
    values: frozenset[str]
    colour: RGB
    width: float
    dashed: bool


def drawable_layers(style: dict[str, Any]) -> list[StyleLayer]:
    """The style's fill and line layers with a plain colour, in drawing order."""
    layers: list[StyleLayer] = []
    for layer in style.get("layers", []):
        kind = layer.get("type")
        if kind not in ("fill", "line") or "source-layer" not in layer:
            continue
        paint = layer.get("paint", {})
        colour = first_colour(paint.get(f"{kind}-color"))
        if colour is None:
            continue
        layers.append(
            StyleLayer(
                id=str(layer.get("id", "")),
                type=kind,
                source_layer=str(layer["source-layer"]),
                values=frozenset(filter_values(layer.get("filter"))),
                colour=colour,
                width=paint_number(paint.get("line-width"), 1.0),
                dashed="line-dasharray" in paint,
            )
        )
    return layers


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: a swatch of the style's colour and its French label."""

    label: str
    type: str
    colour: RGB
    width: float


#: Legend lines: label, source layer, kinds that select it (empty: any), swatch type.
LEGEND_ITEMS: tuple[tuple[str, str, frozenset[str], str], ...] = (
    ("Autoroute, voie rapide", "streets", frozenset({"motorway", "trunk"}), "line"),
    ("Route principale", "streets", frozenset({"primary", "secondary"}), "line"),
    ("Rue", "streets", frozenset({"residential", "unclassified", "living_street"}), "line"),
    ("Chemin, voie piétonne", "streets", frozenset({"footway", "path"}), "line"),
    ("Voie ferrée", "streets", frozenset({"rail"}), "line"),
    ("Bâtiment", "buildings", frozenset(), "fill"),
    ("Eau", "water_polygons", frozenset(), "fill"),
    ("Forêt", "land", frozenset({"forest", "wood"}), "fill"),
    ("Parc, espace vert", "land", frozenset({"park", "grass"}), "fill"),
)


def legend_entries(style: dict[str, Any]) -> list[LegendEntry]:
    """The legend of a style: for each legend item, the topmost layer that draws it."""
    layers = drawable_layers(style)
    entries: list[LegendEntry] = []
    for label, source_layer, kinds, swatch in LEGEND_ITEMS:
        chosen: StyleLayer | None = None
        for layer in layers:
            if layer.source_layer != source_layer or layer.type != swatch:
                continue
            if "casing" in layer.id or "outline" in layer.id:
                continue
            if kinds and not (kinds & layer.values):
                continue
            if kinds and layer.values & {"tunnel", "bridge"} and "tunnel" in layer.id:
                continue
            chosen = layer
        if chosen is not None:
            entries.append(LegendEntry(label, swatch, chosen.colour, chosen.width))
    return entries

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


def load_style(name: str) -> dict[str, Any]:
    """Style ``name`` (a name of styles/ or a .json path) as a dict."""
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


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: a swatch drawn with the colours of the style's layers, and its label.

    ``type`` is "fill" (a box of ``colour`` outlined with ``casing``), "icon" (pictogram
    ``icon``) or "line" (a line of
    ``colour`` ``width`` mm wide over a ``casing`` line, ``dash`` in widths, and an optional
    dashed ``overlay`` colour on top, as railways are drawn).
    """

    label: str
    type: str
    colour: RGB
    width: float = 1.0
    casing: RGB | None = None
    dash: tuple[float, ...] = ()
    overlay: RGB | None = None
    #: For ``type`` "icon": the name of the styles/icons pictogram shown.
    icon: str = ""


@dataclass(frozen=True)
class LegendItem:
    """A legend line: the print style layer ids it shows, and its swatch width in mm."""

    label: str
    layer: str
    casing: str = ""
    overlay: str = ""
    width: float = 1.0


#: The legend, by layer id of styles/print.json; lines whose layer a style lacks are left out.
LEGEND_ITEMS: tuple[LegendItem, ...] = (
    LegendItem("Autoroute, voie rapide", "road-motorway", "road-motorway-casing", width=1.5),
    LegendItem("Route principale", "road-primary", "road-primary-casing", width=1.3),
    LegendItem("Route secondaire", "road-secondary", "road-secondary-casing", width=1.2),
    LegendItem("Rue", "road-minor", "road-minor-casing", width=1.0),
    LegendItem("Rue piétonne", "road-pedestrian", "road-pedestrian-casing", width=1.0),
    LegendItem("Chemin, sentier", "road-footway", width=0.3),
    LegendItem("Piste cyclable", "road-cycleway", width=0.3),
    LegendItem("Voie ferrée", "road-rail", overlay="road-rail-dash", width=0.6),
    LegendItem("Bâtiment", "buildings", "buildings-outline"),
    LegendItem("École", "site-school"),
    LegendItem("Hôpital", "site-hospital"),
    LegendItem("Zone industrielle", "land-industrial"),
    LegendItem("Parc, jardin", "land-park"),
    LegendItem("Prairie, pelouse", "land-grass"),
    LegendItem("Forêt", "land-forest"),
    LegendItem("Cimetière", "land-cemetery"),
    LegendItem("Eau", "water-polygons"),
)


def _layer_colour(layer: dict[str, Any] | None, prop: str) -> RGB | None:
    if layer is None:
        return None
    return first_colour(layer.get("paint", {}).get(prop))


def legend_entries(style: dict[str, Any]) -> list[LegendEntry]:
    """The legend of a style: each legend item whose layer the style has, in its colours."""
    layers = {str(layer.get("id")): layer for layer in style.get("layers", [])}
    entries: list[LegendEntry] = []
    for item in LEGEND_ITEMS:
        layer = layers.get(item.layer)
        if layer is None or layer.get("type") not in ("fill", "line"):
            continue
        kind = str(layer["type"])
        colour = _layer_colour(layer, f"{kind}-color")
        if colour is None:
            continue
        if kind == "fill":
            casing = _layer_colour(layers.get(item.casing), "line-color") or _layer_colour(
                layer, "fill-outline-color"
            )
            entries.append(LegendEntry(item.label, "fill", colour, casing=casing))
            continue
        dash = layer.get("paint", {}).get("line-dasharray")
        entries.append(
            LegendEntry(
                item.label,
                "line",
                colour,
                width=item.width,
                casing=_layer_colour(layers.get(item.casing), "line-color"),
                dash=tuple(float(v) for v in dash) if isinstance(dash, list) else (),
                overlay=_layer_colour(layers.get(item.overlay), "line-color"),
            )
        )
    return entries


#: Style names ending with this draw the named style without any text: the plan writes the
#: names itself as vector text, so none is cut at a frame or hidden under another.
NO_TEXT = "-sans-texte"


def without_text(style: dict[str, Any]) -> dict[str, Any]:
    """``style`` without text: symbol layers keep their icons only, text-only ones are dropped."""
    kept = []
    for layer in style.get("layers", []):
        layout = layer.get("layout", {})
        if layer.get("type") != "symbol" or "text-field" not in layout:
            kept.append(layer)
        elif "icon-image" in layout:
            plain = {k: v for k, v in layout.items() if not k.startswith("text-")}
            paint = {k: v for k, v in layer.get("paint", {}).items() if not k.startswith("text-")}
            kept.append({**layer, "layout": plain, "paint": paint})
    return {**style, "layers": kept}


def text_colour(style: dict[str, Any], layer_id: str, default: RGB) -> RGB:
    """The text colour of layer ``layer_id`` of ``style`` (the plan writes that layer's names
    itself in the same colour), or ``default`` when the style has no such layer."""
    for layer in style.get("layers", []):
        if layer.get("id") == layer_id:
            return _layer_colour(layer, "text-color") or default
    return default

"""Write the palette's colours into the colour, grey and print styles (--check: compare).

Every colour of those styles has a name in the palette, per style (``"motorway"`` in
``"colour"`` is the fill of motorways in colour.json). Each style records the palette it was
last written with in its metadata (``fondplan:palette``): a colour whose value changed in the
palette is replaced wherever that style uses it. Run from the repository root:

    .venv/bin/python scripts/palette.py          # after editing styles/palette/palette.json
    .venv/bin/python scripts/palette.py --check  # exit 1 when a style is not the generated one
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STYLES = ROOT / "styles"
PALETTE = STYLES / "palette" / "palette.json"
#: The style metadata key holding the palette a style was written with.
APPLIED = "fondplan:palette"
COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|(rgb|rgba|hsl|hsla)\(.*\))$")


class PaletteError(Exception):
    """A palette and a style that cannot be reconciled."""


def load_palette(path: Path = PALETTE) -> dict[str, dict[str, str]]:
    """Style name -> colour name -> colour."""
    palette: dict[str, dict[str, str]] = json.loads(path.read_text())
    return palette


def _replace(value: Any, swaps: dict[str, str]) -> Any:
    if isinstance(value, str):
        return swaps.get(value, value) if COLOUR.match(value) else value
    if isinstance(value, list):
        return [_replace(item, swaps) for item in value]
    if isinstance(value, dict):
        return {key: _replace(item, swaps) for key, item in value.items()}
    return value


def colours_of(style: dict[str, Any]) -> dict[str, list[str]]:
    """Every colour the style's layers paint with -> the layers using it."""
    found: dict[str, list[str]] = {}

    def walk(value: Any, layer: str) -> None:
        if isinstance(value, str) and COLOUR.match(value):
            found.setdefault(value, []).append(layer)
        elif isinstance(value, list):
            for item in value:
                walk(item, layer)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, layer)

    for layer in style["layers"]:
        walk([layer.get("paint", {}), layer.get("layout", {})], layer["id"])
    return found


def apply(name: str, style: dict[str, Any], colours: dict[str, str]) -> dict[str, Any]:
    """``style`` with the palette ``colours`` written into it (the style ``name`` for errors)."""
    if len(set(colours.values())) != len(colours):
        raise PaletteError(f"{name}: two colour names have the same value in {PALETTE.name}")
    metadata = style.get("metadata", {})
    applied: dict[str, str] = metadata.get(APPLIED, {})
    swaps = {applied[key]: value for key, value in colours.items() if key in applied}
    layers = [
        {
            **layer,
            **{part: _replace(layer[part], swaps) for part in ("paint", "layout") if part in layer},
        }
        for layer in style["layers"]
    ]
    result = {**style, "metadata": {**metadata, APPLIED: colours}, "layers": layers}
    named = set(colours.values())
    unnamed = {c: layers_ for c, layers_ in colours_of(result).items() if c not in named}
    if unnamed:
        listed = ", ".join(f"{c} ({', '.join(ids[:3])})" for c, ids in sorted(unnamed.items()))
        raise PaletteError(f"{name}: colours without a name in {PALETTE.name}: {listed}")
    unused = sorted(key for key, value in colours.items() if value not in colours_of(result))
    if unused:
        raise PaletteError(f"{name}: palette colours no layer uses: {', '.join(unused)}")
    return result


def render(style: dict[str, Any]) -> str:
    """A style as the repository keeps it."""
    return json.dumps(style, indent=1, ensure_ascii=False) + "\n"


def generated(palette: dict[str, dict[str, str]]) -> dict[Path, str]:
    """Each palette style's file and the text the palette gives it."""
    texts: dict[Path, str] = {}
    for name, colours in palette.items():
        path = STYLES / f"{name}.json"
        texts[path] = render(apply(name, json.loads(path.read_text()), colours))
    return texts


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the styles the palette gives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    try:
        texts = generated(load_palette())
    except (PaletteError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stale = [path for path, text in texts.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"error: {path.relative_to(ROOT)} differs from {PALETTE.name}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(texts[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

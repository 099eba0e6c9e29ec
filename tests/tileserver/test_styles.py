"""styles/: valid MapLibre styles using only what the tiles, fonts and sprites hold."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osmimport.paths import styles_dir
from osmimport.schema import LABEL_COLUMN, LAYER_BY_NAME, NAME_COLUMNS
from tests.stylekit import OURS, image_names, load_style, walk
from tileserver.glyphs import available_fonts, glyph_range
from tileserver.sprites import SPRITE_NAME, VERSATILES_SPRITE, sprite

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / ".bin" / "gl-style-validate"
THIRD_PARTY = ["versatiles-colorful"]
#: Our styles label with the French-first name the tiles carry: no ``coalesce`` for QGIS 3.22.
NAME_EXPR = ["get", LABEL_COLUMN]
#: Fields the VersaTiles style reads only behind a ``has`` test, outside Shortbread 1.1.
OPTIONAL_FIELDS = {("addresses", "unit")}
LEGACY_OPS = {"==", "!=", "<", ">", "<=", ">=", "in", "!in", "has", "!has"}


def _fields(layer: dict[str, Any]) -> set[str]:
    """Feature properties a layer reads, in expressions, legacy filters and "{token}" text."""
    found: set[str] = set()
    parts = [layer.get("filter"), layer.get("layout", {}), layer.get("paint", {})]
    for node in walk(parts):
        if len(node) == 2 and node[0] in ("get", "has", "!has") and isinstance(node[1], str):
            found.add(node[1])
        elif (
            node
            and isinstance(node[0], str)
            and node[0] in LEGACY_OPS
            and len(node) >= 2
            and isinstance(node[1], str)
            and not node[1].startswith("$")
        ):
            found.add(node[1])
    text = layer.get("layout", {}).get("text-field")
    if isinstance(text, str):
        found.update(part.split("}")[0] for part in text.split("{")[1:])
    return found


def _evaluate(expr: Any, props: dict[str, Any]) -> Any:
    """A small evaluator for the expression operators our filters use."""
    if not isinstance(expr, list):
        return expr
    op, args = expr[0], expr[1:]
    if op == "get":
        return props.get(args[0])
    if op == "has":
        return args[0] in props
    if op == "!":
        return not _evaluate(args[0], props)
    if op == "all":
        return all(_evaluate(a, props) for a in args)
    if op == "any":
        return any(_evaluate(a, props) for a in args)
    if op in ("==", "!="):
        equal = _evaluate(args[0], props) == _evaluate(args[1], props)
        return equal if op == "==" else not equal
    if op == "match":
        value = _evaluate(args[0], props)
        for labels, output in zip(args[1:-1:2], args[2:-1:2], strict=True):
            if value in (labels if isinstance(labels, list) else [labels]):
                return _evaluate(output, props)
        return _evaluate(args[-1], props)
    raise AssertionError(f"operator {op!r} not understood by this test")


@pytest.mark.parametrize("name", OURS + THIRD_PARTY)
def test_style_passes_the_maplibre_validator(name: str) -> None:
    assert VALIDATOR.exists(), "run `make setup` (npm install) first"
    done = subprocess.run(
        [str(VALIDATOR), str(styles_dir() / f"{name}.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_validator_rejects_a_broken_style(tmp_path: Path) -> None:
    broken = load_style("colour")
    broken["layers"][1]["type"] = "fil"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, check=False)
    assert done.returncode != 0


@pytest.mark.parametrize("name", OURS + THIRD_PARTY)
def test_every_source_layer_and_field_is_in_the_tile_contract(name: str) -> None:
    style = load_style(name)
    vector_sources = {k for k, v in style["sources"].items() if v["type"] == "vector"}
    used = set()
    for layer in style["layers"]:
        if layer["type"] == "background":
            continue
        assert layer["source"] in vector_sources, layer["id"]
        source_layer = layer["source-layer"]
        assert source_layer in LAYER_BY_NAME, (layer["id"], source_layer)
        columns = set(LAYER_BY_NAME[source_layer].column_names)
        if set(NAME_COLUMNS) <= columns:
            columns.add(LABEL_COLUMN)
        for field in _fields(layer):
            if (source_layer, field) in OPTIONAL_FIELDS:
                continue
            assert field in columns, (layer["id"], source_layer, field)
        used.add(source_layer)
    if name == "colour":
        assert used == set(LAYER_BY_NAME), set(LAYER_BY_NAME) - used


@pytest.mark.parametrize("name", OURS)
def test_our_styles_use_the_server_placeholders_and_french_names(name: str) -> None:
    style = load_style(name)
    assert style["version"] == 8
    assert style["glyphs"] == "fondplan://fonts/{fontstack}/{range}.pbf"
    assert style["sprite"] == f"fondplan://sprites/{SPRITE_NAME}"
    assert style["sources"] == {
        "basemap": {
            "type": "vector",
            "url": "fondplan://tiles/basemap.json",
            "attribution": "© OpenStreetMap contributors",
        }
    }
    named = [
        layer
        for layer in style["layers"]
        if "name" in json.dumps(layer.get("layout", {}).get("text-field"))
    ]
    assert len(named) >= 10
    for layer in named:
        assert NAME_EXPR in list(walk(layer["layout"]["text-field"])), layer["id"]
        assert "coalesce" not in json.dumps(layer["layout"]["text-field"]).replace(
            '"coalesce", ["get", "ref"]', ""
        ), layer["id"]


@pytest.mark.parametrize("name", OURS + THIRD_PARTY)
def test_every_fontstack_is_installed_and_builds(name: str) -> None:
    style = load_style(name)
    installed = {font.lower().replace(" ", "_") for font in available_fonts()}
    stacks = {
        tuple(layer["layout"]["text-font"])
        for layer in style["layers"]
        if "text-font" in layer.get("layout", {})
    }
    assert stacks
    for stack in stacks:
        for font in stack:
            assert font.lower().replace(" ", "_") in installed, font
        message = glyph_range(",".join(stack), 0, 255)
        assert len(message) > 10_000, stack


def test_versatiles_sprite_has_every_image_its_style_names() -> None:
    style = load_style("versatiles-colorful")
    (entry,) = style["sprite"]
    assert entry["url"] == f"fondplan://sprites/{VERSATILES_SPRITE}"
    prefix = entry["id"] + ":"
    named = image_names(style)
    assert len(named) >= 120 and all(n.startswith(prefix) for n in named)
    assert any(n.startswith(prefix + "pattern-") for n in named)
    ours = json.loads(sprite(VERSATILES_SPRITE, 1)[0])
    assert {n.removeprefix(prefix) for n in named} - set(ours) == set()
    assert {prefix + alias for alias in ours} <= named
    for ratio in (1, 2):
        index = json.loads(sprite(VERSATILES_SPRITE, ratio)[0])
        assert all(box["pixelRatio"] == ratio and box["width"] > 0 for box in index.values())


STREET_LABEL_KINDS = [
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential",
    "living_street", "busway", "bus_guideway", "service", "pedestrian", "track", "footway",
    "steps", "path", "cycleway",
]  # fmt: skip


def test_print_style_names_every_street_and_house_number() -> None:
    layers = load_style("print")["layers"]
    street_labels = [
        layer
        for layer in layers
        if layer.get("source-layer") == "street_labels"
        and NAME_EXPR in list(walk(layer["layout"]["text-field"]))
    ]
    for kind in STREET_LABEL_KINDS:
        props = {"kind": kind, "name": "Rue de la Paix"}
        showing = [
            layer
            for layer in street_labels
            if layer.get("minzoom", 0) <= 14 and _evaluate(layer.get("filter", True), props)
        ]
        assert showing, kind
    houses = [layer for layer in layers if layer.get("source-layer") == "addresses"]
    assert houses and all(
        layer["layout"]["text-field"] == ["get", "housenumber"] for layer in houses
    )
    assert min(layer.get("minzoom", 0) for layer in houses) <= 16


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_print_labels_are_larger_and_contrast_in_black_and_white() -> None:
    def sizes(style: str) -> dict[str, float]:
        out = {}
        for layer in load_style(style)["layers"]:
            size = layer.get("layout", {}).get("text-size")
            if size is not None:
                numbers = list(_walk_numbers(size))
                out[layer["id"]] = max(numbers)
        return out

    colour, printed = sizes("colour"), sizes("print")
    shared = set(colour) & set(printed)
    assert shared and all(printed[i] > colour[i] for i in shared)
    for layer in load_style("print")["layers"]:
        paint = layer.get("paint", {})
        if "text-color" in paint:
            text, halo = _luminance(paint["text-color"]), _luminance(paint["text-halo-color"])
            assert (max(text, halo) + 0.05) / (min(text, halo) + 0.05) >= 7, layer["id"]


def _walk_numbers(expr: Any) -> Iterator[float]:
    """The output numbers of a zoom interpolation (every other stop value), or the literal."""
    if isinstance(expr, int | float):
        yield float(expr)
    elif isinstance(expr, list) and expr[0] == "interpolate":
        yield from (float(v) for v in expr[4::2])


def _palette_module() -> Any:
    spec = importlib.util.spec_from_file_location("palette", ROOT / "scripts" / "palette.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["palette"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_styles_are_the_ones_the_palette_gives() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "palette.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    palette = _palette_module().load_palette()
    assert set(palette) == set(OURS)


def test_a_palette_colour_changes_every_layer_using_it_and_nothing_else() -> None:
    module = _palette_module()
    palette = module.load_palette()
    style = load_style("colour")
    old = palette["colour"]["motorway"]
    users = set(module.colours_of(style)[old])
    assert {"road-motorway", "bridge-motorway", "tunnel-motorway"} <= users
    changed = module.apply("colour", style, {**palette["colour"], "motorway": "#123456"})
    assert old not in module.colours_of(changed)
    assert module.colours_of(changed)["#123456"] == module.colours_of(style)[old]
    before = {layer["id"]: layer for layer in style["layers"]}
    for layer in changed["layers"]:
        if layer["id"] not in users:
            assert layer == before[layer["id"]]
    unnamed = {**palette["colour"]}
    del unnamed["motorway"]
    with pytest.raises(module.PaletteError, match=f"colours without a name.*{old}"):
        module.apply("colour", changed | {"layers": style["layers"]}, unnamed)

"""The layer definition is the contract: styles, sprites, town plans and rules all agree with it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest

from cities.facilities import CATEGORIES, MEMBER_ICONS
from osmimport import mapping, schema
from osmimport.importer import run_import
from tests.osmimport.opl import Opl
from tests.stylekit import OURS, image_names, load_style, walk
from tests.tileserver.conftest import tile_of, tile_settings
from tileserver.app import create_app
from tileserver.catalog import layer_fields
from tileserver.sprites import SPRITE_NAME, sprite

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: Comparison operators whose operands are an attribute and one value.
COMPARISONS = {"==", "!=", "<", ">", "<=", ">="}
#: Legacy filter operators listing values after the attribute name.
LEGACY_LISTS = {"in", "!in"}
#: The layers whose attribute values the facilities index reads, by the key it gives them.
FACILITY_LAYERS = {
    "amenity": "pois",
    "leisure": "pois",
    "tourism": "pois",
    "public_transport": "public_transport",
}


def _attribute(expr: Any) -> str | None:
    if isinstance(expr, list) and len(expr) == 2 and expr[0] == "get":
        name = expr[1]
        return name if isinstance(name, str) else None
    return None


def _literal(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def filtered_values(layer: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every (attribute, value) a style layer compares a feature's attribute with.

    Expression forms ``["==", ["get", a], v]`` (either side), ``["in", ["get", a],
    ["literal", [...]]]``, ``["match", ["get", a], labels, output, ..., default]``, and the
    legacy filters ``["==", "a", v]``, ``["in", "a", v1, v2, ...]``.
    """
    for node in walk([layer.get("filter"), layer.get("layout", {}), layer.get("paint", {})]):
        if not node or not isinstance(node[0], str):
            continue
        op, args = node[0], node[1:]
        if op in COMPARISONS and len(args) == 2:
            for side, other in ((args[0], args[1]), (args[1], args[0])):
                name = _attribute(side)
                if name is not None and _literal(other):
                    yield name, other
            if isinstance(args[0], str) and _literal(args[1]):
                yield args[0], args[1]  # legacy
        elif op == "in" and len(args) == 2 and _attribute(args[0]) is not None:
            values = args[1][1] if isinstance(args[1], list) and args[1][:1] == ["literal"] else []
            for value in values:
                yield str(_attribute(args[0])), value
        elif op in LEGACY_LISTS and args and isinstance(args[0], str):
            for value in args[1:]:
                if _literal(value):
                    yield args[0], value
        elif op == "match" and len(args) >= 3:
            name = _attribute(args[0])
            if name is None:
                continue
            for labels in args[1:-1:2]:
                for value in labels if isinstance(labels, list) else [labels]:
                    yield name, value


def _type_accepts(pg_type: str, value: Any) -> bool:
    if pg_type == "boolean":
        return isinstance(value, bool)
    if pg_type == "text":
        return isinstance(value, str)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _contract_errors(style: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    for style_layer in style["layers"]:
        source_layer = style_layer.get("source-layer")
        if source_layer is None:
            continue
        layer = schema.LAYER_BY_NAME[source_layer]
        types = dict(layer.columns)
        for name, value in filtered_values(style_layer):
            if name.startswith("$") or name not in layer_fields(layer):
                continue  # geometry type tests; unknown fields are test_styles' concern
            known = layer.values_of(name)
            if known is not None and value not in known:
                errors.append(f"{style_layer['id']}: {source_layer}.{name} is never {value!r}")
            elif known is None and not _type_accepts(types.get(name, "text"), value):
                errors.append(f"{style_layer['id']}: {source_layer}.{name} cannot be {value!r}")
    return errors


@pytest.mark.parametrize("name", OURS)
def test_every_value_a_style_filters_on_is_in_the_layer_definition(name: str) -> None:
    style = load_style(name)
    assert sum(1 for layer in style["layers"] for _ in filtered_values(layer)) > 100
    assert _contract_errors(style) == []


def test_the_contract_check_finds_a_value_the_import_never_gives() -> None:
    style = load_style("colour")
    broken = json.loads(json.dumps(style))
    for layer in broken["layers"]:
        if layer.get("source-layer") == "streets" and "filter" in layer:
            layer["filter"] = ["all", layer["filter"], ["==", ["get", "kind"], "autobahn"]]
            break
    broken["layers"].append(
        {
            "id": "legacy",
            "type": "fill",
            "source": "basemap",
            "source-layer": "land",
            "filter": ["in", "kind", "forest", "jungle"],
        }
    )
    broken["layers"].append(
        {
            "id": "matched",
            "type": "symbol",
            "source": "basemap",
            "source-layer": "pois",
            "layout": {"icon-image": ["match", ["get", "tourism"], ["museum", "spa"], "x", ""]},
        }
    )
    errors = _contract_errors(broken)
    assert len(errors) == 3, errors
    assert any("'autobahn'" in e for e in errors)
    assert any("land.kind is never 'jungle'" in e for e in errors)
    assert any("pois.tourism is never 'spa'" in e for e in errors)


def test_every_image_a_style_names_is_in_the_sprite_sheet() -> None:
    index = set(json.loads(sprite(SPRITE_NAME, 1)[0]))
    for name in OURS:
        named = image_names(load_style(name))
        assert named, name
        assert named <= index, (name, sorted(named - index))


def test_every_facility_is_in_the_layer_definition_and_its_icon_in_the_sprite() -> None:
    index = set(json.loads(sprite(SPRITE_NAME, 1)[0]))
    for category in CATEGORIES:
        assert category.icon in index, category.key
        for key, value in category.members:
            layer = schema.LAYER_BY_NAME[FACILITY_LAYERS[key]]
            values = layer.values_of(key) if layer.name == "pois" else layer.kinds
            assert values is not None and value in values, (category.key, key, value)
    assert set(MEMBER_ICONS.values()) <= index


def _table_rules() -> Iterator[tuple[dict[str, str], bool]]:
    """Tags for every entry of mapping's tag tables, with whether it is an area."""
    for table in (mapping.WATER_POLYGONS, mapping.LAND, mapping.SITES):
        for key, value in table:
            yield {key: value, "name": "n"}, True
    for key, value in mapping.PUBLIC_TRANSPORT:
        yield {key: value, "name": "n"}, False
    for key, value in mapping.STREETS:
        yield {key: value, "name": "n", "ref": "A 1"}, False
    for highway in mapping.LINK_BASES:
        yield {"highway": f"{highway}_link", "name": "n"}, False
    for waterway in mapping.WATER_LINES:
        yield {"waterway": waterway, "name": "n"}, False
    for aerialway in mapping.AERIALWAYS:
        yield {"aerialway": aerialway}, False
    for place in mapping.PLACES:
        yield {"place": place, "name": "n"}, False
        for capital in mapping.CAPITAL_KINDS:
            yield {"place": place, "name": "n", "capital": capital}, False
    for street in mapping.STREET_POLYGONS:
        key = "highway" if ("highway", street) in mapping.STREETS else "area:aeroway"
        yield {key: street, "area": "yes", "name": "n"}, True
    for key, values in mapping.POIS.items():
        for value in values:
            yield {key: value}, False
    for man_made in mapping.PIER_KINDS:
        yield {"man_made": man_made}, True
        yield {"man_made": man_made}, False
    yield {"man_made": "bridge"}, True
    yield {"waterway": "dam"}, True
    yield {"waterway": "dam"}, False
    yield {"route": "ferry", "name": "n"}, False
    yield {"highway": "motorway_junction", "ref": "1"}, False


def test_the_rules_give_only_what_the_definition_declares() -> None:
    produced: dict[tuple[str, str], set[Any]] = {}
    for tags, area in _table_rules():
        features = (
            mapping.area_features(tags, from_way=False)
            if area
            else [*mapping.node_features(tags), *mapping.line_features(tags, closed=False)]
        )
        assert features, tags
        for feature in features:
            layer = schema.LAYER_BY_NAME[feature.layer]
            assert set(feature.attrs) <= set(layer.column_names), (tags, feature)
            assert layer.minzoom <= feature.minzoom <= layer.maxzoom, (tags, feature)
            for column, value in feature.attrs.items():
                if layer.values_of(column) is not None and value is not None:
                    produced.setdefault((layer.name, column), set()).add(value)
    for layer in schema.LAYERS:
        for column, values in layer.values:
            if (layer.name, column) in produced:
                assert produced[(layer.name, column)] == set(values), (layer.name, column)


ASKED_FOR = {
    "amenity": ["kindergarten", "fuel", "charging_station"],
    "tourism": ["museum"],
}
AT = (7.3, 47.7)


@pytest.fixture(scope="module")
def asked_for_url(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    opl = Opl()
    step = 0.0005
    for key, values in ASKED_FOR.items():
        for value in values:
            opl.node(AT[0] + step, AT[1], **{key: value, "name": f"{key} {value}"})
            step += 0.0005
    opl.square(1, AT[0], AT[1] + 0.001, size=0.0005, amenity="kindergarten", name="Les Lutins")
    path = opl.write(tmp_path_factory.mktemp("asked") / "asked.opl")
    url = make_database()
    run_import(url, [path])
    return url


def test_what_plans_and_styles_ask_for_is_in_the_tiles(asked_for_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(tile_settings(asked_for_url, tmp_path / "cache"))) as client:
        tilejson = client.get("/tiles/basemap.json").json()
        pois_fields = next(v for v in tilejson["vector_layers"] if v["id"] == "pois")["fields"]
        assert pois_fields == layer_fields(schema.LAYER_BY_NAME["pois"])
        x, y = tile_of(*AT, 14)
        response = client.get(f"/tiles/basemap/14/{x}/{y}.mvt")
        assert response.status_code == 200
    pois = mapbox_vector_tile.decode(response.content)["pois"]["features"]
    properties = [feature["properties"] for feature in pois]
    found = {(key, props[key]) for props in properties for key in ASKED_FOR if key in props}
    assert found == {(key, value) for key, values in ASKED_FOR.items() for value in values}
    assert "Les Lutins" in {props.get("name") for props in properties}

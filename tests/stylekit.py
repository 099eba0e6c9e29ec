"""Reading MapLibre styles in tests: loading, walking expressions, the images they name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from osmimport.paths import styles_dir

#: The styles written for fondplan (the third-party one is versatiles-colorful).
OURS = ["colour", "grey", "print"]


def load_style(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((styles_dir() / f"{name}.json").read_text())
    return data


def walk(value: Any) -> Iterator[list[Any]]:
    if isinstance(value, list):
        yield value
        for item in value:
            yield from walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item)


def outputs(expr: Any) -> set[str]:
    """The string values an icon-image expression can produce."""
    if isinstance(expr, str):
        return {expr} if expr else set()
    if not isinstance(expr, list) or not expr:
        return set()
    op = expr[0]
    if op == "match":
        return set().union(*(outputs(v) for v in [*expr[3:-1:2], expr[-1]]))
    if op == "case":
        return set().union(*(outputs(v) for v in [*expr[2:-1:2], expr[-1]]))
    if op == "coalesce":
        return set().union(*(outputs(v) for v in expr[1:]))
    if op == "step":
        return set().union(*(outputs(v) for v in [expr[2], *expr[4::2]]))
    raise AssertionError(f"icon-image expression {op!r} not understood by this test")


def image_names(style: dict[str, Any]) -> set[str]:
    """Every sprite image a style can ask for: icons and fill/line/background patterns."""
    named: set[str] = set()
    for layer in style["layers"]:
        for part in (layer.get("layout", {}), layer.get("paint", {})):
            for prop, value in part.items():
                if prop == "icon-image" or prop.endswith("-pattern"):
                    named |= outputs(value)
    return named

"""The project's SVG pictograms (styles/icons) drawn as vector paths on a pycairo context.

cairosvg draws with cairocffi, whose contexts pycairo cannot draw into: the icon is drawn once
by cairosvg on a cairocffi recording surface while its drawing calls are written down, and the
calls are replayed on the plan's pycairo context (so a PDF gets real paths, not images).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import cairo
import cairocffi  # type: ignore[import-untyped]
import cairosvg.parser
import cairosvg.surface

from cities.errors import CitiesError
from osmimport.paths import styles_dir

#: Side of the SVG icons' view box (styles/icons are 20 × 20 discs).
ICON_VIEWBOX = 20.0

Call = tuple[str, tuple[Any, ...]]


class _Recorder:
    """A cairocffi context stand-in: forwards every call, keeps the ones that draw."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._context, name)

        def call(*args: Any) -> Any:
            result = method(*args)
            # Queries (current point, matrix, path copies) change nothing, and the icons have
            # no text: neither is replayed.
            if result is None and not name.startswith("get_") and "font" not in name:
                self.calls.append((name, tuple(_plain(arg) for arg in args)))
            return result

        return call


def _plain(value: Any) -> Any:
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, cairocffi.Matrix):
        return cairo.Matrix(*value.as_tuple())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    raise CitiesError(f"icon drawing uses an unsupported cairo value {value!r}")


class _RecordingSvgSurface(cairosvg.surface.Surface):  # type: ignore[misc]
    """cairosvg on a cairocffi recording surface, its drawing calls kept in ``recorder``."""

    recorder: _Recorder | None = None

    def _create_surface(self, width: float, height: float) -> tuple[Any, float, float]:
        surface = cairocffi.RecordingSurface(cairocffi.CONTENT_COLOR_ALPHA, (0, 0, width, height))
        return surface, width, height

    def draw(self, node: Any) -> None:
        if self.recorder is None:
            context: Any = self.__dict__["context"]
            self.recorder = _Recorder(context)
            self.context = self.recorder
        super().draw(node)


def icon_path(name: str) -> str:
    """The file of icon ``name`` (``school`` → styles/icons/school.svg)."""
    path = styles_dir() / "icons" / f"{name}.svg"
    if not path.is_file():
        raise CitiesError(f"icon {name!r} not found in {path.parent.name}/")
    return str(path)


@functools.lru_cache(maxsize=128)
def icon_calls(name: str) -> tuple[tuple[Call, ...], float]:
    """Icon ``name`` as its cairo drawing calls (SVG user units) and its width in those units."""
    tree = cairosvg.parser.Tree(url=icon_path(name))
    surface = _RecordingSvgSurface(tree, None, 96)
    recorder = surface.recorder
    calls = tuple(recorder.calls) if recorder is not None else ()
    surface.cairo.finish()
    width = float(tree.get("width", ICON_VIEWBOX).rstrip("px") or ICON_VIEWBOX)
    return calls, width


def draw_icon(ctx: cairo.Context[Any], name: str, x: float, y: float, size: float) -> None:
    """Draw icon ``name`` centred on (x, y), ``size`` user units wide, as vector paths."""
    calls, width = icon_calls(name)
    ctx.save()
    ctx.translate(x - size / 2, y - size / 2)
    ctx.scale(size / width, size / width)
    ctx.new_path()
    for method, args in calls:
        getattr(ctx, method)(*args)
    ctx.new_path()
    ctx.restore()

"""Text measurement, wrapping and the flow of index items into columns and pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cairo

#: Font of every text of a plan (Debian fonts-dejavu-core).
FONT = "DejaVu Sans"
PT = 25.4 / 72  # one typographic point in millimetres


def font_options() -> cairo.FontOptions:
    """Unhinted metrics, so measured widths are the same on PDF and PNG pages."""
    options = cairo.FontOptions()
    options.set_hint_metrics(cairo.HINT_METRICS_OFF)
    options.set_hint_style(cairo.HINT_STYLE_NONE)
    return options


def set_font(ctx: cairo.Context[Any], size_pt: float, bold: bool = False) -> None:
    """Select the plan font at ``size_pt`` points (the context draws in millimetres)."""
    weight = cairo.FONT_WEIGHT_BOLD if bold else cairo.FONT_WEIGHT_NORMAL
    ctx.select_font_face(FONT, cairo.FONT_SLANT_NORMAL, weight)
    ctx.set_font_size(size_pt * PT)
    ctx.set_font_options(font_options())


class Measure:
    """Text widths in millimetres, measured on a scratch context."""

    def __init__(self) -> None:
        self._surface = cairo.ImageSurface(cairo.FORMAT_A8, 1, 1)
        self.ctx = cairo.Context(self._surface)

    def width(self, text: str, size_pt: float, bold: bool = False) -> float:
        """Advance width of ``text`` in mm."""
        set_font(self.ctx, size_pt, bold)
        return float(self.ctx.text_extents(text).x_advance)

    def wrap(
        self, text: str, size_pt: float, max_width: float, bold: bool = False, sep: str = " "
    ) -> list[str]:
        """``text`` broken into lines no wider than ``max_width`` (long words are cut)."""
        lines: list[str] = []
        current = ""
        for word in text.split(sep):
            candidate = f"{current}{sep}{word}" if current else word
            if self.width(candidate.rstrip(), size_pt, bold) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current.rstrip())
            current = word
            while self.width(current, size_pt, bold) > max_width and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and self.width(current[:cut] + "-", size_pt, bold) > max_width:
                    cut -= 1
                lines.append(current[:cut] + "-")
                current = current[cut:]
        if current:
            lines.append(current.rstrip())
        return lines or [""]


@dataclass
class Item:
    """A block of the index flow: measured into lines, then drawn at a place."""

    kind: str  # "title", "letter", "category", "entry", "gap"
    text: str = ""
    cells: str = ""
    #: Set for category headings and facility entries: a name of styles/icons.
    icon: str | None = None
    keep_with_next: bool = False
    name_lines: list[str] = field(default_factory=list)
    cell_lines: list[str] = field(default_factory=list)
    height: float = 0.0


@dataclass
class Column:
    """A rectangle (mm) the flow fills from the top."""

    x: float
    y: float
    width: float
    height: float


@dataclass
class Placed:
    """An item put at (x, y) with the width of its column."""

    item: Item
    x: float
    y: float
    width: float


@dataclass(frozen=True)
class TextSizes:
    """Font sizes (pt) of the index."""

    body: float
    letter: float
    title: float

    @property
    def line(self) -> float:
        """Line height (mm) of body text."""
        return self.body * PT * 1.3


def measure_item(item: Item, width: float, measure: Measure, sizes: TextSizes) -> None:
    """Wrap the item's text to ``width`` mm and set its height."""
    line = sizes.line
    if item.kind == "gap":
        item.height = line * 0.6
    elif item.kind == "title":
        item.name_lines = measure.wrap(item.text, sizes.title, width, bold=True)
        item.height = len(item.name_lines) * sizes.title * PT * 1.3 + line * 0.3
    elif item.kind == "letter":
        item.name_lines = [item.text]
        item.height = sizes.letter * PT * 1.6
    elif item.kind == "category":
        indent = line * 1.2
        item.name_lines = measure.wrap(item.text, sizes.body * 1.1, width - indent, bold=True)
        item.height = len(item.name_lines) * line * 1.15 + line * 0.25
    else:
        gap = measure.width("  ", sizes.body)
        cells_width = measure.width(item.cells, sizes.body, bold=True)
        indent = line * 1.1 if item.icon else 0.0
        if cells_width <= width * 0.4:
            item.name_lines = measure.wrap(
                item.text, sizes.body, width - cells_width - gap - indent
            )
            item.cell_lines = [item.cells]
            item.height = len(item.name_lines) * line
        else:
            item.name_lines = measure.wrap(item.text, sizes.body, width - indent)
            item.cell_lines = [
                part.strip()
                for part in measure.wrap(item.cells, sizes.body, width * 0.85, bold=True, sep=", ")
            ]
            item.cell_lines = [
                f"{text}," if i < len(item.cell_lines) - 1 else text
                for i, text in enumerate(item.cell_lines)
            ]
            item.height = (len(item.name_lines) + len(item.cell_lines)) * line


def flow(
    items: Sequence[Item],
    first_columns: Sequence[Column],
    more_columns: Callable[[], Sequence[Column]],
    measure: Measure,
    sizes: TextSizes,
) -> list[list[Placed]]:
    """Place items column after column; when ``first_columns`` are full, ask for more pages.

    Returns the placed items per page: the first list fills ``first_columns``, the others
    each fill one call of ``more_columns``. Headings stay with the item that follows them.
    """
    pages: list[list[Placed]] = [[]]
    columns = list(first_columns)
    index = 0
    y_used = 0.0
    if not columns:
        pages.append([])
        columns = list(more_columns())
    for position, item in enumerate(items):
        column = columns[index]
        measure_item(item, column.width, measure, sizes)
        needed = item.height
        # A heading stays with what follows it, through a chain of headings (the index title,
        # then a letter or category heading, then the first entry).
        ahead = position
        while items[ahead].keep_with_next and ahead + 1 < len(items):
            ahead += 1
            measure_item(items[ahead], column.width, measure, sizes)
            needed += items[ahead].height
        at_top = y_used == 0.0
        if y_used + needed > column.height and not (at_top and item.height > column.height):
            if item.kind == "gap":
                continue
            index += 1
            y_used = 0.0
            if index >= len(columns):
                pages.append([])
                columns = list(more_columns())
                index = 0
            column = columns[index]
            measure_item(item, column.width, measure, sizes)
        if item.kind == "gap" and y_used == 0.0:
            continue
        pages[-1].append(Placed(item, column.x, column.y + y_used, column.width))
        y_used += item.height
    return pages

"""Paper sizes, orientations and the layouts of a town plan."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from cities.errors import CitiesError

#: ISO 216 A series, portrait (width, height) in millimetres.
PAPERS: dict[str, tuple[float, float]] = {
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
    "A2": (420.0, 594.0),
    "A1": (594.0, 841.0),
    "A0": (841.0, 1189.0),
}
#: The paper of a plan when none is asked for.
DEFAULT_PAPER = "A3"


Named = TypeVar("Named", bound=StrEnum)


class Layout(StrEnum):
    """Where the street and facilities index goes."""

    INDEX_SIDE = "index-side"
    INDEX_BELOW = "index-below"
    INDEX_PAGES = "index-pages"


class Orientation(StrEnum):
    """Page orientation; ``best`` follows the shape of the planned area."""

    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"
    BEST = "best"


def parse_paper(value: str) -> str:
    """The canonical paper name (``a3`` → ``A3``), or an error listing the known ones."""
    name = value.strip().upper()
    if name not in PAPERS:
        raise CitiesError(f"unknown paper {value!r}; use one of {', '.join(PAPERS)}")
    return name


def _parse_named(kind: type[Named], what: str, value: str) -> Named:
    """The member of ``kind`` named ``value`` (any case), or an error listing the known ones."""
    try:
        return kind(value.strip().lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise CitiesError(f"unknown {what} {value!r}; use one of {known}") from None


def parse_layout(value: str) -> Layout:
    """The layout named ``value``, or an error listing the known ones."""
    return _parse_named(Layout, "layout", value)


def parse_orientation(value: str) -> Orientation:
    """The orientation named ``value``, or an error listing the known ones."""
    return _parse_named(Orientation, "orientation", value)


def page_size_mm(paper: str, orientation: Orientation, extent_ratio: float) -> tuple[float, float]:
    """Page (width, height) in mm; ``best`` picks landscape for areas wider than tall.

    ``extent_ratio`` is the planned area's width over height on the ground.
    """
    short, long = PAPERS[paper]
    if orientation is Orientation.BEST:
        orientation = Orientation.LANDSCAPE if extent_ratio > 1.0 else Orientation.PORTRAIT
    if orientation is Orientation.LANDSCAPE:
        return long, short
    return short, long

"""Paper sizes, orientations and the layouts of a town plan."""

from __future__ import annotations

from enum import StrEnum

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


def parse_layout(value: str) -> Layout:
    """The layout named ``value``, or an error listing the known ones."""
    try:
        return Layout(value.strip().lower())
    except ValueError:
        known = ", ".join(layout.value for layout in Layout)
        raise CitiesError(f"unknown layout {value!r}; use one of {known}") from None


def parse_orientation(value: str) -> Orientation:
    """The orientation named ``value``, or an error listing the known ones."""
    try:
        return Orientation(value.strip().lower())
    except ValueError:
        known = ", ".join(o.value for o in Orientation)
        raise CitiesError(f"unknown orientation {value!r}; use one of {known}") from None


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

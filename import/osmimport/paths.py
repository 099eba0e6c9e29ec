"""Where fondplan's data files live: a source checkout or an installed wheel."""

from __future__ import annotations

import sys
from pathlib import Path

#: The checkout root (``import/osmimport/paths.py`` is three levels below it).
_CHECKOUT = Path(__file__).resolve().parent.parent.parent


def styles_dir() -> Path:
    """The folder of the style JSON files: ``styles/`` in a checkout, else ``fondplan_styles``."""
    checkout = _CHECKOUT / "styles"
    if checkout.is_dir():
        return checkout
    for entry in sys.path:
        candidate = Path(entry) / "fondplan_styles"
        if candidate.is_dir():
            return candidate
    return checkout


def node_modules_dir() -> Path:
    """The npm packages installed by ``make setup`` (MapLibre GL JS, Leaflet, ...)."""
    return _CHECKOUT / "node_modules"

"""Where fondplan's data files live: a source checkout or an installed wheel."""

from __future__ import annotations

import os
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


def is_checkout(root: Path) -> bool:
    """Whether ``root`` is a fondplan source checkout (the package runs from its files)."""
    return (root / "pyproject.toml").is_file() and (root / "import" / "osmimport").is_dir()


def default_data_dir(root: Path = _CHECKOUT) -> Path:
    """Where fondplan keeps its data when ``FONDPLAN_DATA_DIR`` is unset.

    The ``var/`` folder of the checkout the package runs from, whatever the current folder;
    for an installed package, the per-user data folder (``$XDG_DATA_HOME/fondplan``, by
    default ``~/.local/share/fondplan``).
    """
    if is_checkout(root):
        return root / "var"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "fondplan"

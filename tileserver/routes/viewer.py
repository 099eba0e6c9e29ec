"""The map viewer at ``/`` and its static files (MapLibre GL JS from npm, never a CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from osmimport.paths import node_modules_dir
from tileserver.context import AppContext

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: URL folder under /static/vendor → folder inside node_modules.
VENDOR = {
    "maplibre-gl": "maplibre-gl/dist",
    "leaflet": "leaflet/dist",
    "maplibre-gl-leaflet": "@maplibre/maplibre-gl-leaflet",
}


def index(request: Request) -> Response:
    """The viewer page."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The viewer page, its own static files and the npm packages it loads."""
    vendor: list[BaseRoute] = [
        Mount(
            f"/static/vendor/{name}",
            app=StaticFiles(directory=node_modules_dir() / folder, check_dir=False),
            name=f"vendor-{name}",
        )
        for name, folder in VENDOR.items()
    ]
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        *vendor,
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

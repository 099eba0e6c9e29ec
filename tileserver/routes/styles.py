"""Styles: ``/styles`` lists them, ``/styles/{style}.json`` serves one with absolute URLs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from osmimport.paths import styles_dir
from tileserver.context import AppContext
from tileserver.errors import NotFound
from tileserver.routes import cached_response, document_max_age, public_url

#: Written in style files where the server's absolute URL goes (``fondplan://tiles/...``).
PLACEHOLDER = "fondplan://"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def style_path(name: str) -> Path:
    """The file of style ``name``; NotFound when there is none."""
    if not _NAME.match(name):
        raise NotFound(f"unknown style {name!r}")
    path = styles_dir() / f"{name}.json"
    if not path.is_file():
        raise NotFound(f"unknown style {name!r}; see /styles")
    return path


def style_names() -> list[str]:
    """The styles shipped, sorted by name."""
    folder = styles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _NAME.match(p.stem))


def render_style(name: str, base_url: str) -> str:
    """The style JSON text with every ``fondplan://`` placeholder made absolute."""
    text = style_path(name).read_text(encoding="utf-8")
    return text.replace(PLACEHOLDER, base_url.rstrip("/") + "/")


def style(request: Request) -> Response:
    """One style, MapLibre style spec v8."""
    name = request.path_params["style"]
    text = render_style(name, public_url(request))
    return cached_response(request, text, "application/json", document_max_age(request))


def style_list(request: Request) -> Response:
    """Every style: id, name and absolute URL (TileServer GL's ``/styles.json`` shape)."""
    base = public_url(request)
    items: list[dict[str, Any]] = []
    for name in style_names():
        try:
            title = json.loads(style_path(name).read_text(encoding="utf-8")).get("name") or name
        except ValueError:
            continue
        items.append({"id": name, "name": title, "url": f"{base}/styles/{name}.json"})
    return JSONResponse(items)


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """``/styles``, ``/styles.json`` and ``/styles/{style}.json``, at the root.

    Not mounted under ``/styles``: raster tiles and WMTS share that prefix with their own routes.
    """
    return [
        Route("/styles", style_list, methods=["GET", "HEAD"]),
        Route("/styles.json", style_list, methods=["GET", "HEAD"]),
        Route("/styles/{style}.json", style, methods=["GET", "HEAD"]),
    ]

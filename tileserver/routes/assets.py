"""Glyphs and sprites: ``/fonts/{fontstack}/{start}-{end}.pbf``, ``/sprites/{name}[@2x].png``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tileserver import glyphs, sprites
from tileserver.context import AppContext
from tileserver.errors import BadRequest
from tileserver.routes import app_settings, cached_response

_RANGE = re.compile(r"^(\d{1,6})-(\d{1,6})\.pbf$")
_SPRITE = re.compile(r"^([A-Za-z0-9_-]{1,64})(?:@([1-9])x)?\.(json|png)$")


def _cached_response(request: Request, body: bytes, media_type: str) -> Response:
    return cached_response(request, body, media_type, app_settings(request).tiles.max_age)


def font_range(request: Request, builder: glyphs.GlyphBuilder) -> Response:
    """One 256-codepoint glyph range of a (comma-separated, merged) fontstack."""
    fontstack = request.path_params["fontstack"]
    match = _RANGE.match(request.path_params["range"])
    if not match:
        raise BadRequest("malformed glyph path: expected /fonts/{fontstack}/{start}-{end}.pbf")
    start, end = int(match.group(1)), int(match.group(2))
    data = builder.glyph_range(fontstack, start, end)
    return _cached_response(request, data, "application/x-protobuf")


def sprite_file(request: Request, cache_dir: Path | None) -> Response:
    """A sprite sheet's JSON index or PNG, at @1x or @Nx (kept on disk in ``cache_dir``)."""
    match = _SPRITE.match(request.path_params["file"])
    if not match:
        raise BadRequest("malformed sprite path: expected /sprites/{name}[@2x].json|png")
    name, ratio, ext = match.group(1), int(match.group(2) or 1), match.group(3)
    index, png = sprites.sprite(name, ratio, cache_dir)
    if ext == "json":
        return _cached_response(request, index, "application/json")
    return _cached_response(request, png, "image/png")


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The glyph and sprite routes, at the root, with the disk caches of the settings."""
    settings = context.settings
    builder = glyphs.builder_for(settings.glyph_cache_dir(), settings.assets.font_dirs)
    sprite_cache = settings.sprite_cache_dir()

    def fonts(request: Request) -> Response:
        return font_range(request, builder)

    def sprite_sheet(request: Request) -> Response:
        return sprite_file(request, sprite_cache)

    return [
        Route("/fonts/{fontstack}/{range}", fonts, methods=["GET", "HEAD"]),
        Route("/sprites/{file}", sprite_sheet, methods=["GET", "HEAD"]),
    ]

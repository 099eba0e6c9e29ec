"""Route groups of the tile server; each module has a ``routes(settings)`` factory."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from osmimport.etag import fingerprint, none_match
from tileserver.errors import BadRequest
from tileserver.middleware import REFLECTED
from tileserver.settings import Settings

_HOST = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+$")


def app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def public_url(request: Request) -> str:
    """The absolute URL clients reach the server at, without a trailing slash.

    ``FONDPLAN_PUBLIC_URL`` wins; else ``X-Forwarded-Proto``/``X-Forwarded-Host`` (and
    ``X-Forwarded-Prefix``) set by a trusted reverse proxy (the others' are dropped by
    :class:`tileserver.middleware.ProxyHeaders`); else the request's own scheme and host. The
    answer is then marked to vary by those headers.
    """
    configured = app_settings(request).server.public_url
    if configured:
        return configured.rstrip("/")
    request.scope[REFLECTED] = True
    headers = request.headers
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = request.url.scheme
    host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host", "")
    if not host or not _HOST.match(host):
        host = request.url.netloc
    prefix = headers.get("x-forwarded-prefix", "").split(",")[0].strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise BadRequest("X-Forwarded-Prefix must start with /")
    # Inside a Mount, root_path includes the mount prefix; app_root_path is the app's own.
    scope = request.scope
    root = str(scope.get("app_root_path", scope.get("root_path", ""))).rstrip("/")
    return f"{proto}://{host}{prefix}{root}"


def not_modified(request: Request, etag: str) -> bool:
    """Whether the request's ``If-None-Match`` lines match ``etag``: answer 304."""
    return none_match(request.headers.getlist("if-none-match"), etag)


def cached_response(
    request: Request,
    body: bytes | str,
    media_type: str,
    max_age: int,
    etag: str | None = None,
) -> Response:
    """``body`` with an ETag (its fingerprint unless given) and ``max-age``; 304 when the
    client holds it already."""
    data = body.encode() if isinstance(body, str) else body
    tag = etag or f'"{fingerprint(data)}"'
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={max_age}"}
    if not_modified(request, tag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def cached_json(request: Request, content: object, max_age: int) -> Response:
    """``content`` as JSON through :func:`cached_response`."""
    return cached_response(request, bytes(JSONResponse(content).body), "application/json", max_age)


def document_max_age(request: Request) -> int:
    """``max-age`` of documents naming the data (styles, TileJSON, WMTS): at most 5 minutes."""
    return min(app_settings(request).tiles.max_age, 300)

"""The OSRM v5 HTTP API as Starlette routes: /route/v1, /nearest/v1, /table/v1."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from osmimport.database import database_url
from osmimport.errors import FondplanError
from routing.errors import OsrmError
from routing.osrm import parse_coordinates
from routing.service import RoutingService
from routing.settings import RoutingSettings

Handler = Callable[[str, list[tuple[float, float]], dict[str, str]], dict[str, Any]]


def _error(code: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _endpoint(service: RoutingService, method: str) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        handler: Handler = getattr(service, method)
        try:
            coordinates = parse_coordinates(request.path_params["coordinates"])
            params = dict(request.query_params)
            if len(params) != len(request.query_params.multi_items()):
                raise OsrmError("InvalidQuery", "Query string malformed: repeated option")
            result = handler(request.path_params["profile"], coordinates, params)
        except OsrmError as exc:
            return _error(exc.code, exc.message)
        except FondplanError as exc:
            # No graph built yet or the database is unreachable: the server's state, not the
            # request, is at fault.
            return _error("NoGraph", str(exc), 503)
        return JSONResponse(result)

    endpoint.__name__ = f"osrm_{method}"
    return endpoint


def viewer_script(request: Request) -> Response:
    """The viewer's routing panel (plain JavaScript, no build step)."""
    text = resources.files("routing").joinpath("static", "routing.js").read_text("utf-8")
    return Response(text, media_type="text/javascript; charset=utf-8")


def routes(service: RoutingService) -> list[BaseRoute]:
    """The routes the tile server mounts; plain ``def`` handlers run in the thread pool."""
    return [
        Route("/route/v1/{profile}/{coordinates:path}", _endpoint(service, "route")),
        Route("/nearest/v1/{profile}/{coordinates:path}", _endpoint(service, "nearest")),
        Route("/table/v1/{profile}/{coordinates:path}", _endpoint(service, "table")),
        Route("/routing/routing.js", viewer_script),
    ]


def group_routes(context: Any) -> list[BaseRoute]:
    """The route group factory of the tile server (gets its app context, duck-typed).

    The graphs are loaded when the server starts (``context.on_startup``) and reloaded when
    the data version changes.
    """
    database = context.settings.database
    service = RoutingService(lambda: database_url(database), RoutingSettings())
    context.on_startup.append(service.load)
    return routes(service)

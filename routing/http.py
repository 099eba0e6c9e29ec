"""The OSRM v5 HTTP API as Starlette routes: /route/v1, /nearest/v1, /table/v1."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from osmimport.database import database_url
from osmimport.errors import FondplanError
from routing.client import RoutingClient
from routing.errors import OsrmError

if TYPE_CHECKING:
    # The engine's modules (numba, scipy, networkx) are imported when an engine is made here:
    # a worker whose routes the shared routing server answers never loads them.
    from routing.processes import RoutingProcesses
    from routing.service import RoutingService

Handler = Callable[[str, list[tuple[float, float]], dict[str, str]], dict[str, Any]]

#: The services cheap enough to answer on the event loop once their graph is loaded.
FAST_SERVICES = ("route", "nearest")
#: Requests with more coordinates than this go to the worker threads.
FAST_MAX_COORDINATES = 10


def dump(result: dict[str, Any]) -> bytes:
    """An answer as compact JSON."""
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


def answer(
    service: RoutingService,
    method: str,
    profile: str,
    coordinates: str,
    query: Sequence[tuple[str, str]],
) -> tuple[int, bytes]:
    """The HTTP status and JSON body of an OSRM request to ``method``."""
    from routing.osrm import parse_coordinates

    handler: Handler = getattr(service, method)
    try:
        points = parse_coordinates(coordinates)
        params = dict(query)
        if len(params) != len(query):
            raise OsrmError("InvalidQuery", "Query string malformed: repeated option")
        return 200, dump(handler(profile, points, params))
    except OsrmError as exc:
        return 400, dump({"code": exc.code, "message": exc.message})
    except FondplanError as exc:
        # No graph built yet or the database is unreachable: the server's state, not the
        # request, is at fault.
        return 503, dump({"code": "NoGraph", "message": str(exc)})


def _endpoint(service: RoutingService, method: str) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        try:
            # Keeps the data version fresh for the fast path, whatever this request is.
            service.refresh()
        except FondplanError:
            pass
        status, body = answer(
            service,
            method,
            request.path_params["profile"],
            request.path_params["coordinates"],
            request.query_params.multi_items(),
        )
        return Response(body, status_code=status, media_type="application/json")

    endpoint.__name__ = f"osrm_{method}"
    return endpoint


class Answerer(Protocol):
    """What answers a request away from the event loop: child processes or the routing server."""

    async def answer(
        self,
        version: str,
        method: str,
        profile: str,
        coordinates: str,
        query: Sequence[tuple[str, str]],
    ) -> tuple[int, bytes]:
        """The status and JSON body of a request for data version ``version``."""
        ...


def _remote_endpoint(
    version: Callable[[], str], answerer: Answerer, method: str
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        status, body = await answerer.answer(
            version(),
            method,
            request.path_params["profile"],
            request.path_params["coordinates"],
            request.query_params.multi_items(),
        )
        headers = {"Retry-After": "1"} if status == 503 else None
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    endpoint.__name__ = f"osrm_{method}"
    return endpoint


def fast_answer(service: RoutingService, path: str, query: str) -> tuple[int, bytes] | None:
    """``/route/v1`` and ``/nearest/v1`` answered without a worker thread when the profile's
    graph is loaded and its data version was checked recently (no lock, database or loading to
    wait for); None otherwise, for the regular route."""
    from routing.service import Busy

    parts = path.split("/", 4)
    if len(parts) != 5 or parts[1] not in FAST_SERVICES or parts[2] != "v1":
        return None
    if parts[4].count(";") >= FAST_MAX_COORDINATES:
        return None
    params = parse_qsl(query, keep_blank_values=True)
    if any(name == "alternatives" and value not in ("false", "0") for name, value in params):
        # Tens of searches: the worker threads take those, the event loop stays free.
        return None
    try:
        with service.without_waiting():
            return answer(service, parts[1], parts[3], parts[4], params)
    except Busy:
        return None


#: Estimated event-loop milliseconds per kilometre of straight line between the coordinates,
#: and how much each option multiplies it (measured on foot routes, the densest graph).
COST_PER_KM = 0.15
COST_PER_COORDINATE = 0.3
COST_FACTORS = {"steps": 4.0, "annotations": 3.0, "overview=full": 2.0, "geojson": 1.5}


def request_cost(path: str, query: str) -> float:
    """The estimated work of a fast-path request, by its straight-line length and options.

    The answer's size (steps, annotations, full geometry) and the search grow with the
    distance covered, not with the number of coordinates.
    """
    from routing.osrm import parse_coordinates

    parts = path.split("/", 4)
    if len(parts) != 5:
        return 0.0
    try:
        points = parse_coordinates(parts[4])
    except OsrmError:
        return 0.0
    km = sum(_km(a, b) for a, b in zip(points, points[1:], strict=False))
    factor = 1.0
    params = dict(parse_qsl(query, keep_blank_values=True))
    if params.get("steps") == "true":
        factor *= COST_FACTORS["steps"]
    if params.get("annotations", "false") != "false":
        factor *= COST_FACTORS["annotations"]
    if params.get("overview") == "full":
        factor *= COST_FACTORS["overview=full"]
    if params.get("geometries") == "geojson":
        factor *= COST_FACTORS["geojson"]
    return (km * COST_PER_KM + len(points) * COST_PER_COORDINATE) * factor


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[1] + b[1]) / 2)
    dx = (b[0] - a[0]) * math.cos(lat) * 111.32
    dy = (b[1] - a[1]) * 110.57
    return math.hypot(dx, dy)


def viewer_script(request: Request) -> Response:
    """The viewer's routing panel (plain JavaScript, no build step)."""
    text = resources.files("routing").joinpath("static", "routing.js").read_text("utf-8")
    return Response(text, media_type="text/javascript; charset=utf-8")


def routes(service: RoutingService, processes: RoutingProcesses | None = None) -> list[BaseRoute]:
    """The routes the tile server mounts; queries run in ``processes`` when given, else in the
    thread pool."""

    def endpoint(method: str) -> Callable[[Request], Any]:
        if processes is None:
            return _endpoint(service, method)
        return _remote_endpoint(service.current_version, processes, method)

    return _osrm_routes(endpoint)


def _osrm_routes(endpoint: Callable[[str], Callable[[Request], Any]]) -> list[BaseRoute]:
    return [
        Route("/route/v1/{profile}/{coordinates:path}", endpoint("route")),
        Route("/nearest/v1/{profile}/{coordinates:path}", endpoint("nearest")),
        Route("/table/v1/{profile}/{coordinates:path}", endpoint("table")),
        Route("/routing/routing.js", viewer_script),
    ]


def group_routes(context: Any) -> list[BaseRoute]:
    """The route group factory of the tile server (gets its app context, duck-typed).

    Routes follow the tiles' data version: the engines of a new version are loaded before the
    tile service switches to it (its switch hook), so both switch together; ``/health`` shows
    each profile's state.
    """
    database = context.settings.database
    tiles = context.tiles
    settings = context.settings.routing
    if settings.routing_server is not None and context.settings.server.tiles_file is None:
        return server_routes(context, RoutingClient(settings.routing_server, settings))
    from routing.processes import RoutingProcesses
    from routing.service import RoutingService

    service = RoutingService(
        lambda: database_url(database),
        settings,
        follow=lambda: tiles.version,
        data_dir=database.data_dir,
    )
    processes = None
    if settings.routing_processes > 0:
        processes = RoutingProcesses(
            database_url(database), settings, database.data_dir, settings.routing_processes
        )
        context.on_shutdown.append(processes.close)
        context.metrics.add_gauges(processes.gauges)
    if context.settings.server.tiles_file is not None:
        # Tiles from an archive, no database: no routing data (routes answer 503 NoGraph).
        context.health["routing"] = lambda: {"ready": True, "served": False}
    else:
        tiles.add_switch_hook(service.prepare)
        context.health["routing"] = service.health
    for method in FAST_SERVICES:
        context.add_fast_route(
            f"/{method}/v1/", f"osrm_{method}", partial(fast_answer, service), request_cost
        )
    return routes(service, processes)


def server_routes(context: Any, client: RoutingClient) -> list[BaseRoute]:
    """The route group of a worker whose routes the shared routing server answers: it holds
    no engine; its switch hook has the server load the new version first, and ``/health``
    shows the server's state for the version the worker serves."""
    tiles = context.tiles
    context.tiles.add_switch_hook(client.prepare)
    context.health["routing"] = lambda: client.health(tiles.version)
    context.metrics.add_gauges(client.gauges)
    return _osrm_routes(lambda method: _remote_endpoint(lambda: tiles.version, client, method))

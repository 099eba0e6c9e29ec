"""OSRM v5 requests and responses: parsing coordinates and options, building route JSON."""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing import kernels, polyline
from routing.engine import Engine, Route, Snap, dedupe
from routing.errors import OsrmError
from routing.guidance import MODES, Stretch, build_steps, stretch
from routing.network import haversine
from routing.settings import RoutingSettings

COMMON_OPTIONS = frozenset(
    {"bearings", "radiuses", "generate_hints", "hints", "approaches", "exclude", "snapping"}
)
ROUTE_OPTIONS = COMMON_OPTIONS | {
    "alternatives",
    "steps",
    "annotations",
    "geometries",
    "overview",
    "continue_straight",
    "waypoints",
    "skip_waypoints",
}
TABLE_OPTIONS = COMMON_OPTIONS | {
    "sources",
    "destinations",
    "annotations",
    "fallback_speed",
    "fallback_coordinate",
    "scale_factor",
    "skip_waypoints",
}
NEAREST_OPTIONS = COMMON_OPTIONS | {"number", "skip_waypoints"}
#: Douglas-Peucker tolerance (degrees, about 5 m) of ``overview=simplified``.
SIMPLIFY_TOLERANCE = 0.00005
ANNOTATIONS = ("duration", "distance", "speed", "weight", "nodes", "datasources")


def invalid_query(message: str) -> OsrmError:
    """OSRM's error for a query string it cannot parse."""
    return OsrmError("InvalidQuery", message)


def parse_coordinates(text: str) -> list[tuple[float, float]]:
    """``lon,lat;lon,lat`` or ``polyline(...)``/``polyline6(...)`` as (lon, lat) pairs."""
    if text.endswith(".json"):
        text = text[: -len(".json")]
    for prefix, precision in (("polyline6(", 6), ("polyline(", 5)):
        if text.startswith(prefix) and text.endswith(")"):
            try:
                points = polyline.decode(text[len(prefix) : -1], precision)
            except ValueError as exc:
                raise OsrmError("InvalidUrl", f"URL string malformed: {exc}") from None
            break
    else:
        points = []
        position = 0
        for pair in text.split(";"):
            parts = pair.split(",")
            try:
                if len(parts) != 2:
                    raise ValueError
                lon, lat = float(parts[0]), float(parts[1])
            except ValueError:
                raise OsrmError(
                    "InvalidUrl", f"URL string malformed close to position {position}: {pair!r}"
                ) from None
            if not (math.isfinite(lon) and math.isfinite(lat)):
                raise OsrmError("InvalidUrl", f"URL string malformed: {pair!r}")
            points.append((lon, lat))
            position += len(pair) + 1
    if not points:
        raise OsrmError("InvalidUrl", "URL string malformed: no coordinates")
    for lon, lat in points:
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise OsrmError("InvalidValue", f"Invalid coordinate value: {lon},{lat}")
    return points


#: OSRM's numbers: JSON doubles (no ``nan``, ``inf``, hex or trailing dot).
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
#: A bearing: two 16-bit integers, ``value,range``.
_BEARING = re.compile(r"([+-]?\d{1,5}),([+-]?\d{1,5})")
#: A hint: base64 (OSRM's alphabet, URL-safe).
_HINT = re.compile(r"[A-Za-z0-9+/_=-]+")
#: An exclude class name.
_CLASS = re.compile(r"[A-Za-z0-9]+")
APPROACHES = ("unrestricted", "curb", "opposite")


def _malformed(name: str, value: str) -> OsrmError:
    return invalid_query(f"Query string malformed: {name}={value}")


def _boolean(params: Mapping[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value in {"true", "false"}:
        return value == "true"
    raise invalid_query(f"Query string malformed: {name} must be true or false, not {value!r}")


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise invalid_query(
            f"Query string malformed: {name} must be one of {', '.join(choices)}, not {value!r}"
        )
    return value


def _number(name: str, value: str) -> float:
    if not _NUMBER.fullmatch(value):
        raise _malformed(name, value)
    return float(value)


def _count(name: str, value: str) -> int:
    """An unsigned integer in ASCII digits."""
    if not (value.isascii() and value.isdigit()):
        raise _malformed(name, value)
    return int(value)


def _per_coordinate(params: Mapping[str, str], name: str, count: int) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    parts = value.split(";")
    if len(parts) != count:
        raise OsrmError(
            "InvalidOptions",
            f"Number of elements in {name} size {len(parts)} does not match coordinate size "
            f"{count}",
        )
    return parts


@dataclass
class Options:
    """Options common to every service, parsed and checked."""

    radiuses: list[float | None]
    generate_hints: bool = True
    skip_waypoints: bool = False
    steps: bool = False
    alternatives: int = 0
    annotations: tuple[str, ...] = ()
    geometries: str = "polyline"
    #: "simplified", "full", "false" or "by_legs" (a full geometry per leg, none overall).
    overview: str = "simplified"
    #: Per coordinate, (bearing, range) in degrees or None.
    bearings: list[tuple[float, float] | None] = field(default_factory=list)
    #: "default" (the profile decides), "true" or "false".
    continue_straight: str = "default"
    #: "default" (not onto small parts of the network) or "any".
    snapping: str = "default"
    sources: list[int] = field(default_factory=list)
    destinations: list[int] = field(default_factory=list)
    number: int = 1
    #: /table: km/h of the straight-line estimate where no route exists, or None.
    fallback_speed: float | None = None
    #: /table: "input" or "snapped", the coordinates the estimate is measured between.
    fallback_coordinate: str = "input"
    #: /table: factor of the durations.
    scale_factor: float = 1.0


def _radiuses(params: Mapping[str, str], count: int, default: float) -> list[float | None]:
    radiuses: list[float | None] = [default] * count
    for i, value in enumerate(_per_coordinate(params, "radiuses", count) or []):
        if value in {"", "unlimited"}:
            radiuses[i] = None if value == "unlimited" else default
            continue
        radius = _number("radiuses", value)
        if not math.isfinite(radius) or radius < 0:
            raise OsrmError("InvalidValue", f"Invalid radius {value!r}")
        radiuses[i] = radius
    return radiuses


def _bearings(params: Mapping[str, str], count: int) -> list[tuple[float, float] | None]:
    bearings: list[tuple[float, float] | None] = [None] * count
    for i, value in enumerate(_per_coordinate(params, "bearings", count) or []):
        if not value:
            continue
        match = _BEARING.fullmatch(value)
        if match is None:
            raise _malformed("bearings", value)
        heading, spread = int(match[1]), int(match[2])
        if not (0 <= heading <= 360 and 0 <= spread <= 180):
            raise OsrmError(
                "InvalidOptions", f"Bearing {value!r} must be 0-360 with a range of 0-180"
            )
        bearings[i] = (float(heading), float(spread))
    return bearings


def _check_common(params: Mapping[str, str], count: int) -> None:
    """Options that are parsed and checked like OSRM does, then not applied."""
    for value in _per_coordinate(params, "approaches", count) or []:
        if value and value not in APPROACHES:
            raise _malformed("approaches", value)
    for value in _per_coordinate(params, "hints", count) or []:
        if value and not _HINT.fullmatch(value):
            raise _malformed("hints", value)
    exclude = params.get("exclude")
    if exclude is not None:
        if not all(_CLASS.fullmatch(name) for name in exclude.split(",")):
            raise _malformed("exclude", exclude)
        raise OsrmError("InvalidValue", "Exclude flag combination is not supported")


def parse_options(
    service: str, params: Mapping[str, str], count: int, settings: RoutingSettings
) -> Options:
    """Check the query string of ``service`` for ``count`` coordinates: a value OSRM cannot
    parse is ``InvalidQuery``, one it parses but rejects (a count not matching the
    coordinates, a bearing out of range, a speed not above 0) is ``InvalidOptions``."""
    allowed = {"route": ROUTE_OPTIONS, "table": TABLE_OPTIONS, "nearest": NEAREST_OPTIONS}[service]
    for name in params:
        if name not in allowed:
            raise invalid_query(f"Query string malformed: unknown option {name!r}")
    _check_common(params, count)
    options = Options(
        radiuses=_radiuses(params, count, settings.routing_snap_radius),
        bearings=_bearings(params, count),
        generate_hints=_boolean(params, "generate_hints", True),
        skip_waypoints=_boolean(params, "skip_waypoints", False),
        snapping=_choice(params, "snapping", ("default", "any"), "default"),
    )
    if service == "route":
        _route_options(options, params, count, settings)
    elif service == "table":
        _table_options(options, params, count)
    else:
        number = _count("number", params.get("number", "1"))
        if number < 1:
            raise OsrmError("InvalidOptions", "number must be at least 1")
        if number > settings.routing_max_nearest:
            raise OsrmError(
                "TooBig", f"Number of results is higher than {settings.routing_max_nearest}"
            )
        options.number = number
    return options


def _route_options(
    options: Options, params: Mapping[str, str], count: int, settings: RoutingSettings
) -> None:
    options.steps = _boolean(params, "steps", False)
    options.geometries = _choice(
        params, "geometries", ("polyline", "polyline6", "geojson"), "polyline"
    )
    options.overview = _choice(
        params, "overview", ("simplified", "full", "false", "by_legs"), "simplified"
    )
    options.continue_straight = _choice(
        params, "continue_straight", ("default", "true", "false"), "default"
    )
    alternatives = params.get("alternatives", "false")
    if alternatives in {"true", "false"}:
        options.alternatives = 1 if alternatives == "true" else 0
    else:
        wanted = _count("alternatives", alternatives)
        options.alternatives = min(wanted, settings.routing_max_alternatives)
    annotations = params.get("annotations", "false")
    if annotations in {"true", "false"}:
        options.annotations = ANNOTATIONS if annotations == "true" else ()
    else:
        names = annotations.split(",")
        if any(name not in ANNOTATIONS for name in names):
            raise _malformed("annotations", annotations)
        options.annotations = tuple(name for name in ANNOTATIONS if name in names)
    if "waypoints" in params:
        waypoints = [_count("waypoints", part) for part in params["waypoints"].split(";")]
        if any(index >= count for index in waypoints):
            raise OsrmError("InvalidOptions", "waypoints index out of range")
        if waypoints[0] != 0 or waypoints[-1] != count - 1:
            raise OsrmError(
                "InvalidValue", "First and last coordinates must be specified as waypoints."
            )
        if waypoints != list(range(count)):
            raise OsrmError("NotImplemented", "Waypoints other than every coordinate")


def _table_options(options: Options, params: Mapping[str, str], count: int) -> None:
    if count < 2:
        raise OsrmError("InvalidOptions", "Number of coordinates needs to be at least two.")
    options.sources = _indices(params, "sources", count)
    options.destinations = _indices(params, "destinations", count)
    annotations = params.get("annotations", "duration")
    names = annotations.split(",")
    if any(name not in {"duration", "distance"} for name in names):
        raise _malformed("annotations", annotations)
    options.annotations = tuple(name for name in ("duration", "distance") if name in names)
    if "fallback_speed" in params:
        options.fallback_speed = _number("fallback_speed", params["fallback_speed"])
        if options.fallback_speed <= 0:
            raise OsrmError("InvalidOptions", "fallback_speed must be > 0")
    options.fallback_coordinate = _choice(
        params, "fallback_coordinate", ("input", "snapped"), "input"
    )
    if "scale_factor" in params:
        options.scale_factor = _number("scale_factor", params["scale_factor"])
        if options.scale_factor <= 0:
            raise OsrmError("InvalidOptions", "scale_factor must be > 0")


def _indices(params: Mapping[str, str], name: str, count: int) -> list[int]:
    value = params.get(name, "all")
    if value == "all":
        return list(range(count))
    indices = [_count(name, part) for part in value.split(";")]
    for index in indices:
        if index >= count:
            raise OsrmError("InvalidOptions", f"{name} index {index} is out of range")
    return indices


def fallback(
    coordinates: Sequence[tuple[float, float]],
    snaps: Sequence[Snap],
    options: Options,
    durations: list[list[float | None]],
    distances: list[list[float | None]],
) -> list[list[int]]:
    """/table's ``fallback_speed``: where no route exists, the straight-line distance between
    the input (or snapped) coordinates, and that at ``fallback_speed`` metres per second. Fills
    the tables in place and returns the cells estimated as ``[row, column]``."""
    assert options.fallback_speed is not None
    if options.fallback_coordinate == "snapped":
        points = [(snap.lon, snap.lat) for snap in snaps]
    else:
        points = list(coordinates)
    cells = []
    for row, i in enumerate(options.sources):
        for column, j in enumerate(options.destinations):
            if durations[row][column] is not None:
                continue
            metres = haversine(*points[i], *points[j])
            durations[row][column] = round(metres / options.fallback_speed, 1)
            if distances:
                distances[row][column] = round(metres, 1)
            cells.append([row, column])
    return cells


# -- responses -----------------------------------------------------------------------------


def hint(engine: Engine, snap: Snap) -> str:
    """An opaque OSRM-style hint: the snapped edge and position (base64)."""
    return base64.urlsafe_b64encode(struct.pack("<id", snap.edge, snap.fraction)).decode()


def waypoint(
    engine: Engine, snap: Snap, options: Options, *, nodes: bool = False
) -> dict[str, Any]:
    """OSRM's waypoint object for a snapped coordinate."""
    data = engine.edges[snap.edge]
    result: dict[str, Any] = {
        "name": data["name"],
        "distance": round(snap.distance, 3),
        "location": [round(snap.lon, 6), round(snap.lat, 6)],
    }
    if options.generate_hints:
        result["hint"] = hint(engine, snap)
    if nodes:
        result["nodes"] = [engine.tail[snap.edge], engine.head[snap.edge]]
    return result


Coords = NDArray[np.float64] | Sequence[tuple[float, float]]


def geometry(coords: Coords, kind: str) -> Any:
    """A line in the requested OSRM geometry format."""
    if kind == "geojson":
        points = np.round(np.asarray(coords, dtype=np.float64).reshape(-1, 2), 6)
        return {"type": "LineString", "coordinates": points.tolist()}
    return polyline.encode(coords, 6 if kind == "polyline6" else 5)


def leg(engine: Engine, path: Route, options: Options) -> tuple[dict[str, Any], Coords]:
    """An OSRM route leg for one path, and its coordinates."""
    stretches: list[Stretch] = []
    if options.steps or options.annotations:
        stretches = [stretch(engine, part) for part in path.parts]
        for s, turn in zip(stretches, engine.turns(path).tolist(), strict=True):
            s.turn = turn / 1000.0
    duration = engine.duration(path)
    result: dict[str, Any] = {
        "steps": (
            build_steps(engine, stretches, options.geometries, MODES[engine.profile])
            if options.steps
            else []
        ),
        "summary": engine.summary(path),
        "weight": round(duration, 1),
        "duration": round(duration, 1),
        "distance": round(engine.length(path), 1),
    }
    if options.annotations:
        annotation: dict[str, list[Any]] = {name: [] for name in options.annotations}
        for s in stretches:
            speed = s.distance / s.duration if s.duration > 0 else 0.0
            # The turn into a stretch is charged to its first segment.
            turn = s.turn
            for a, b in zip(s.coords, s.coords[1:], strict=False):
                piece = haversine(*a, *b)
                seconds = (piece / speed if speed > 0 else 0.0) + turn
                turn = 0.0
                if "distance" in annotation:
                    annotation["distance"].append(round(piece, 1))
                if "duration" in annotation:
                    annotation["duration"].append(round(seconds, 1))
                if "weight" in annotation:
                    annotation["weight"].append(round(seconds, 1))
                if "speed" in annotation:
                    annotation["speed"].append(round(speed, 1))
                if "datasources" in annotation:
                    annotation["datasources"].append(0)
            if "nodes" in annotation:
                for node in s.nodes:
                    if not annotation["nodes"] or annotation["nodes"][-1] != node:
                        annotation["nodes"].append(node)
        result["annotation"] = annotation
    return result, engine.line(path) if options.overview != "false" else ()


def route_object(engine: Engine, paths: list[Route], options: Options) -> dict[str, Any]:
    """An OSRM route made of one path per leg."""
    legs = []
    chunks: list[Coords] = []
    for path in paths:
        result, coords = leg(engine, path, options)
        legs.append(result)
        chunks.append(coords)
    distance = sum(item["distance"] for item in legs)
    duration = sum(item["duration"] for item in legs)
    route: dict[str, Any] = {
        "legs": legs,
        "weight_name": "duration",
        "weight": round(duration, 1),
        "duration": round(duration, 1),
        "distance": round(distance, 1),
    }
    if options.overview == "by_legs":
        for item, chunk in zip(legs, chunks, strict=True):
            item["geometry"] = geometry(chunk, options.geometries)
    elif options.overview != "false":
        coords = (
            np.asarray(chunks[0])
            if len(chunks) == 1
            else dedupe(np.concatenate([np.asarray(chunk).reshape(-1, 2) for chunk in chunks]))
        )
        if options.overview == "simplified" and len(coords) > 2:
            coords = kernels.simplify(coords, SIMPLIFY_TOLERANCE)
        route["geometry"] = geometry(coords, options.geometries)
    return route

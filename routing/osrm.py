"""OSRM v5 requests and responses: parsing coordinates and options, building route JSON."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing import kernels, polyline
from routing.engine import Engine, Path, Snap, dedupe
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


def _per_coordinate(params: Mapping[str, str], name: str, count: int) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    parts = value.split(";")
    if len(parts) != count:
        raise OsrmError(
            "InvalidOptions", f"Number of {name} ({len(parts)}) must match coordinates ({count})"
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
    overview: str = "simplified"
    #: Per coordinate, (bearing, range) in degrees or None.
    bearings: list[tuple[float, float] | None] = field(default_factory=list)
    #: "default" (the profile decides), "true" or "false".
    continue_straight: str = "default"
    sources: list[int] = field(default_factory=list)
    destinations: list[int] = field(default_factory=list)
    number: int = 1


def parse_options(
    service: str, params: Mapping[str, str], count: int, settings: RoutingSettings
) -> Options:
    """Check the query string of ``service`` for ``count`` coordinates."""
    allowed = {"route": ROUTE_OPTIONS, "table": TABLE_OPTIONS, "nearest": NEAREST_OPTIONS}[service]
    for name in params:
        if name not in allowed:
            raise invalid_query(f"Query string malformed: unknown option {name!r}")
    radiuses: list[float | None] = [settings.routing_snap_radius] * count
    for i, value in enumerate(_per_coordinate(params, "radiuses", count) or []):
        if value in {"", "unlimited"}:
            radiuses[i] = None if value == "unlimited" else settings.routing_snap_radius
            continue
        try:
            radius = float(value)
        except ValueError:
            raise invalid_query(f"Query string malformed: radius {value!r}") from None
        if not math.isfinite(radius) or radius < 0:
            raise OsrmError("InvalidValue", f"Invalid radius {value!r}")
        radiuses[i] = radius
    bearings: list[tuple[float, float] | None] = [None] * count
    for i, value in enumerate(_per_coordinate(params, "bearings", count) or []):
        if not value:
            continue
        pieces = value.split(",")
        try:
            if len(pieces) != 2:
                raise ValueError
            heading, spread = float(pieces[0]), float(pieces[1])
        except ValueError:
            raise invalid_query(f"Query string malformed: bearing {value!r}") from None
        if not (0 <= heading <= 360 and 0 <= spread <= 180):
            raise OsrmError("InvalidValue", f"Invalid bearing {value!r}")
        bearings[i] = (heading, spread)
    # Approaches are accepted and, like OSRM profiles without approach support, not applied.
    _per_coordinate(params, "approaches", count)
    if params.get("exclude"):
        raise OsrmError("InvalidValue", "Exclude flag combination is not supported")
    options = Options(
        radiuses=radiuses,
        bearings=bearings,
        generate_hints=_boolean(params, "generate_hints", True),
        skip_waypoints=_boolean(params, "skip_waypoints", False),
    )
    if service == "route":
        options.steps = _boolean(params, "steps", False)
        options.geometries = _choice(
            params, "geometries", ("polyline", "polyline6", "geojson"), "polyline"
        )
        options.overview = _choice(
            params, "overview", ("simplified", "full", "false"), "simplified"
        )
        options.continue_straight = _choice(
            params, "continue_straight", ("default", "true", "false"), "default"
        )
        alternatives = params.get("alternatives", "false")
        if alternatives in {"true", "false"}:
            options.alternatives = 1 if alternatives == "true" else 0
        elif alternatives.isdigit():
            options.alternatives = min(int(alternatives), settings.routing_max_alternatives)
        else:
            raise invalid_query(f"Query string malformed: alternatives {alternatives!r}")
        annotations = params.get("annotations", "false")
        if annotations in {"true", "false"}:
            options.annotations = ANNOTATIONS if annotations == "true" else ()
        else:
            wanted = tuple(annotations.split(","))
            if any(name not in ANNOTATIONS for name in wanted):
                raise invalid_query(f"Query string malformed: annotations {annotations!r}")
            options.annotations = wanted
        if "waypoints" in params:
            raise OsrmError("NotImplemented", "The waypoints option is not supported")
    elif service == "table":
        options.sources = _indices(params, "sources", count)
        options.destinations = _indices(params, "destinations", count)
        annotations = params.get("annotations", "duration")
        wanted = tuple(annotations.split(","))
        if any(name not in {"duration", "distance"} for name in wanted):
            raise invalid_query(f"Query string malformed: annotations {annotations!r}")
        options.annotations = wanted
    else:
        number = params.get("number", "1")
        if not number.isdigit() or int(number) < 1:
            raise invalid_query(f"Query string malformed: number {number!r}")
        if int(number) > settings.routing_max_nearest:
            raise OsrmError(
                "TooBig", f"Number of results is higher than {settings.routing_max_nearest}"
            )
        options.number = int(number)
    return options


def _indices(params: Mapping[str, str], name: str, count: int) -> list[int]:
    value = params.get(name, "all")
    if value == "all":
        return list(range(count))
    indices = []
    for part in value.split(";"):
        if not part.isdigit():
            raise invalid_query(f"Query string malformed: {name} {value!r}")
        if int(part) >= count:
            raise OsrmError("InvalidOptions", f"{name} index {part} is out of range")
        indices.append(int(part))
    return indices


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


def leg(engine: Engine, path: Path, options: Options) -> tuple[dict[str, Any], Coords]:
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


def route_object(engine: Engine, paths: list[Path], options: Options) -> dict[str, Any]:
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
    if options.overview != "false":
        coords = (
            np.asarray(chunks[0])
            if len(chunks) == 1
            else dedupe(np.concatenate([np.asarray(chunk).reshape(-1, 2) for chunk in chunks]))
        )
        if options.overview == "simplified" and len(coords) > 2:
            coords = kernels.simplify(coords, SIMPLIFY_TOLERANCE)
        route["geometry"] = geometry(coords, options.geometries)
    return route

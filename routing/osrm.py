"""OSRM v5 requests and responses: parsing coordinates and options, building route JSON."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from shapely.geometry import LineString

from routing import polyline
from routing.engine import Engine, Part, Path, Snap
from routing.errors import OsrmError
from routing.network import bearing, haversine
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
    _per_coordinate(params, "bearings", count)
    _per_coordinate(params, "approaches", count)
    if params.get("exclude"):
        raise OsrmError("InvalidValue", "Exclude flag combination is not supported")
    options = Options(
        radiuses=radiuses,
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
        _choice(params, "continue_straight", ("default", "true", "false"), "default")
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


Coords = NDArray[np.float64] | list[tuple[float, float]]


def geometry(coords: Coords, kind: str) -> Any:
    """A line in the requested OSRM geometry format."""
    if kind == "geojson":
        points = np.round(np.asarray(coords, dtype=np.float64).reshape(-1, 2), 6)
        return {"type": "LineString", "coordinates": points.tolist()}
    return polyline.encode(coords, 6 if kind == "polyline6" else 5)


@dataclass
class _Stretch:
    part: Part
    data: dict[str, Any]
    coords: list[tuple[float, float]]
    nodes: list[int]
    distance: float
    duration: float


def _stretch(engine: Engine, part: Part) -> _Stretch:
    data = engine.edges[part.edge]
    points: tuple[tuple[float, float], ...] = data["geometry"]
    osm_nodes: tuple[int, ...] = data["nodes"]
    if part.start == 0.0 and part.end == 1.0:
        return _Stretch(
            part,
            data,
            list(points),
            list(osm_nodes),
            float(data["length"]),
            float(data["travel_time"]),
        )
    cumulative = [0.0]
    for a, b in zip(points, points[1:], strict=False):
        cumulative.append(cumulative[-1] + haversine(*a, *b))
    total = cumulative[-1] or 1.0

    def at(fraction: float) -> tuple[float, float]:
        target = fraction * total
        for i in range(1, len(points)):
            if cumulative[i] >= target or i == len(points) - 1:
                span = cumulative[i] - cumulative[i - 1]
                t = 0.0 if span <= 0 else min(1.0, max(0.0, (target - cumulative[i - 1]) / span))
                a, b = points[i - 1], points[i]
                return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
        return points[0]

    lo, hi = part.start * total, part.end * total
    coords = [at(part.start)]
    nodes = []
    for i in range(len(points)):
        if lo < cumulative[i] < hi:
            coords.append(points[i])
            nodes.append(osm_nodes[i])
    coords.append(at(part.end))
    if part.start == 0.0:
        nodes.insert(0, osm_nodes[0])
    if part.end == 1.0:
        nodes.append(osm_nodes[-1])
    share = part.end - part.start
    return _Stretch(part, data, coords, nodes, data["length"] * share, data["travel_time"] * share)


def _join_coords(chunks: list[Coords]) -> NDArray[np.float64]:
    """The chunks as one line without repeated consecutive points (at least two points)."""
    arrays = [np.asarray(chunk, dtype=np.float64).reshape(-1, 2) for chunk in chunks]
    out = np.concatenate(arrays) if arrays else np.empty((0, 2))
    if len(out) > 1:
        keep = np.ones(len(out), dtype=bool)
        keep[1:] = np.any(out[1:] != out[:-1], axis=1)
        out = out[keep]
    if len(out) == 1:
        out = np.concatenate([out, out])
    return out


def _bearings(coords: Coords) -> tuple[int, int]:
    """Bearing of the first and of the last piece of a line."""
    points = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    moves = np.flatnonzero(np.any(points[1:] != points[:-1], axis=1))
    if not len(moves):
        return 0, 0
    i, j = int(moves[0]), int(moves[-1])
    first = bearing(*map(float, points[i]), *map(float, points[i + 1]))
    last = bearing(*map(float, points[j]), *map(float, points[j + 1]))
    return round(first) % 360, round(last) % 360


def modifier(before: float, after: float) -> str:
    """OSRM's maneuver modifier for a change of heading."""
    angle = (after - before + 360.0) % 360.0
    if angle < 15 or angle > 345:
        return "straight"
    if 170 <= angle <= 190:
        return "uturn"
    if angle < 60:
        return "slight right"
    if angle < 140:
        return "right"
    if angle < 180:
        return "sharp right"
    if angle < 220:
        return "sharp left"
    if angle < 300:
        return "left"
    return "slight left"


def _step(
    stretches: list[_Stretch], kind: str, before: int, options: Options, mode: str
) -> dict[str, Any]:
    coords = _join_coords([s.coords for s in stretches])
    after, _ = _bearings(coords)
    data = stretches[0].data
    location = [round(float(coords[0][0]), 6), round(float(coords[0][1]), 6)]
    maneuver: dict[str, Any] = {
        "location": location,
        "bearing_before": before if kind != "depart" else 0,
        "bearing_after": after,
        "type": kind,
    }
    if kind not in {"depart", "arrive"}:
        maneuver["modifier"] = modifier(before, after)
        if maneuver["modifier"] == "straight" and kind == "turn":
            maneuver["type"] = "new name"
    intersection: dict[str, Any] = {"location": location, "bearings": [after], "entry": [True]}
    if kind == "depart":
        intersection["out"] = 0
    else:
        intersection["bearings"] = sorted({(before + 180) % 360, after})
        intersection["entry"] = [True] * len(intersection["bearings"])
        intersection["in"] = intersection["bearings"].index((before + 180) % 360)
        intersection["out"] = intersection["bearings"].index(after)
    distance = sum(s.distance for s in stretches)
    duration = sum(s.duration for s in stretches)
    step: dict[str, Any] = {
        "geometry": geometry(coords, options.geometries),
        "maneuver": maneuver,
        "mode": "ferry" if data["mode"] == "ferry" else mode,
        "driving_side": "right",
        "name": data["name"],
        "intersections": [intersection],
        "weight": round(duration, 1),
        "duration": round(duration, 1),
        "distance": round(distance, 1),
    }
    if data["ref"]:
        step["ref"] = data["ref"]
    return step


def _steps(stretches: list[_Stretch], options: Options, mode: str) -> list[dict[str, Any]]:
    groups: list[list[_Stretch]] = []
    for stretch in stretches:
        key = (stretch.data["name"], stretch.data["ref"], stretch.data["mode"])
        if groups:
            previous = groups[-1][-1].data
            same = (previous["name"], previous["ref"], previous["mode"]) == key
            if (
                same
                and (previous["roundabout"] == stretch.data["roundabout"])
                and (key[0] or key[1])
            ):
                groups[-1].append(stretch)
                continue
            if same and not (key[0] or key[1]):
                turn = modifier(_bearings(groups[-1][-1].coords)[1], _bearings(stretch.coords)[0])
                if turn in {"straight", "slight left", "slight right"}:
                    groups[-1].append(stretch)
                    continue
        groups.append([stretch])
    steps = []
    before = 0
    for i, group in enumerate(groups):
        kind = "depart" if i == 0 else "turn"
        if i and group[0].data["roundabout"]:
            kind = "roundabout"
        steps.append(_step(group, kind, before, options, mode))
        before = _bearings(_join_coords([s.coords for s in group]))[1]
    last_point = stretches[-1].coords[-1] if stretches else (0.0, 0.0)
    end = (float(last_point[0]), float(last_point[1]))
    location = [round(end[0], 6), round(end[1], 6)]
    last = stretches[-1].data if stretches else {"name": "", "ref": "", "mode": mode}
    arrive: dict[str, Any] = {
        "geometry": geometry([end, end], options.geometries),
        "maneuver": {
            "location": location,
            "bearing_before": before,
            "bearing_after": 0,
            "type": "arrive",
        },
        "mode": "ferry" if last["mode"] == "ferry" else mode,
        "driving_side": "right",
        "name": last["name"],
        "intersections": [
            {"location": location, "bearings": [(before + 180) % 360], "entry": [True], "in": 0}
        ],
        "weight": 0,
        "duration": 0,
        "distance": 0,
    }
    steps.append(arrive)
    return steps


def _summary(pieces: list[tuple[dict[str, Any], float, float]]) -> str:
    """The two longest named roads of a leg, in the order travelled."""
    totals: dict[str, float] = {}
    order: dict[str, int] = {}
    for i, (data, distance, _) in enumerate(pieces):
        label = data["name"] or data["ref"]
        order[label] = i
        if label:
            totals[label] = totals.get(label, 0.0) + distance
    best = sorted(totals, key=lambda label: -totals[label])[:2]
    return ", ".join(sorted(best, key=lambda label: order[label]))


def _leg_coords(engine: Engine, path: Path) -> NDArray[np.float64]:
    """The line of ``path``: whole edges gathered at once, the partial ends cut."""
    chunks: list[Coords] = []
    run: list[int] = []
    for part in path.parts:
        if part.start == 0.0 and part.end == 1.0:
            run.append(part.edge)
            continue
        if run:
            chunks.append(engine.gather(run))
            run = []
        chunks.append(_stretch(engine, part).coords)
    if run:
        chunks.append(engine.gather(run))
    return _join_coords(chunks)


def leg(engine: Engine, path: Path, options: Options) -> tuple[dict[str, Any], Coords]:
    """An OSRM route leg for one path, and its coordinates."""
    stretches: list[_Stretch] = []
    if options.steps or options.annotations:
        stretches = [_stretch(engine, part) for part in path.parts]
        coords = _join_coords([s.coords for s in stretches])
        pieces = [(s.data, s.distance, s.duration) for s in stretches]
    else:
        coords = _leg_coords(engine, path)
        pieces = []
        for part in path.parts:
            data = engine.edges[part.edge]
            share = part.end - part.start
            pieces.append((data, data["length"] * share, data["travel_time"] * share))
    distance = sum(piece[1] for piece in pieces)
    duration = sum(piece[2] for piece in pieces)
    mode = {"car": "driving", "bike": "cycling", "foot": "walking"}[engine.profile]
    result: dict[str, Any] = {
        "steps": _steps(stretches, options, mode) if options.steps else [],
        "summary": _summary(pieces),
        "weight": round(duration, 1),
        "duration": round(duration, 1),
        "distance": round(distance, 1),
    }
    if options.annotations:
        annotation: dict[str, list[Any]] = {name: [] for name in options.annotations}
        for s in stretches:
            speed = s.distance / s.duration if s.duration > 0 else 0.0
            for a, b in zip(s.coords, s.coords[1:], strict=False):
                piece = haversine(*a, *b)
                seconds = piece / speed if speed > 0 else 0.0
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
    return result, coords


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
        coords = _join_coords(chunks)
        if options.overview == "simplified" and len(coords) > 2:
            simple = LineString(coords).simplify(0.00005, preserve_topology=False)
            coords = np.asarray(simple.coords)
        route["geometry"] = geometry(coords, options.geometries)
    return route

"""Turn-by-turn steps of a route leg as OSRM builds them: maneuvers, roundabouts, intersections."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from routing import polyline
from routing.engine import Engine, Junction, Part, angle_difference
from routing.network import bearing, haversine

#: Road classes a ramp leaves (off ramp) or joins (merge).
FAST_ROADS = frozenset({"motorway", "trunk"})
#: Roads within this many degrees of straight ahead count as going straight on (forks, T ends).
STRAIGHTISH = 40.0
#: OSRM's travel modes per profile.
MODES = {"car": "driving", "bike": "cycling", "foot": "walking"}
#: Named rings wider than this (m) whose name no road off them bears are rotaries (OSRM).
MAX_ROUNDABOUT_RADIUS = 15.0
#: Rings up to this radius (m) with few, well separated exits are taken like a turn (OSRM).
MAX_ROUNDABOUT_INTERSECTION_RADIUS = 15.0
#: Exits closer than this (degrees) are too alike for a ``roundabout turn``.
NARROW_TURN_ANGLE = 40.0
#: Step types of entering a ring and of leaving it, per kind of ring.
RING_TYPES = {
    "roundabout": ("roundabout", "exit roundabout"),
    "rotary": ("rotary", "exit rotary"),
    "roundabout turn": ("roundabout turn", "exit roundabout"),
}


@dataclass
class Stretch:
    """The travelled piece of one edge: its line, OSM nodes, metres and seconds."""

    part: Part
    data: dict[str, Any]
    coords: Sequence[tuple[float, float]]
    nodes: Sequence[int]
    distance: float
    #: Seconds travelling the piece.
    duration: float
    #: Seconds of the turn into it from the previous stretch.
    turn: float = 0.0


def stretch(engine: Engine, part: Part) -> Stretch:
    """The stretch of ``part``: the whole edge, or the line cut at its fractions."""
    data = engine.edges[part.edge]
    points: tuple[tuple[float, float], ...] = data["geometry"]
    osm_nodes: tuple[int, ...] = data["nodes"]
    if part.start == 0.0 and part.end == 1.0:
        return Stretch(
            part, data, points, osm_nodes, float(data["length"]), float(data["travel_time"])
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
    return Stretch(part, data, coords, nodes, data["length"] * share, data["travel_time"] * share)


def modifier(before: float, after: float) -> str:
    """OSRM's maneuver modifier for a change of heading (its turn-angle bands)."""
    angle = (after - before + 360.0) % 360.0
    if abs(angle - 180.0) < 1.0:
        return "uturn"
    if angle <= 20 or angle >= 340:
        return "straight"
    if angle <= 40:
        return "slight right"
    if angle <= 120:
        return "right"
    if angle < 180:
        return "sharp right"
    if angle <= 240:
        return "sharp left"
    if angle < 320:
        return "left"
    return "slight left"


def _side(before: float, after: float) -> str:
    """``slight left``/``slight right``/``straight``: the modifiers of forks and merges."""
    angle = (after - before + 360.0) % 360.0
    if angle < 5 or angle > 355:
        return "straight"
    return "slight right" if angle < 180 else "slight left"


@dataclass
class _Step:
    """A step being built: where it starts (stretch and node) and its maneuver."""

    first: int
    kind: str
    before: float
    after: float
    modifier: str | None = None
    exit: int | None = None
    #: Stretch giving the step its name (the exit road for ring steps).
    named_by: int = 0
    #: The ring's name, for rotaries.
    ring_name: str = ""
    intersections: list[dict[str, Any]] = field(default_factory=list)


def _location(point: tuple[float, float]) -> list[float]:
    # np.round, like the geometries, so a maneuver location equals its line's first point.
    rounded: list[float] = np.round(np.asarray(point, dtype=np.float64), 6).tolist()
    return rounded


def _key(data: dict[str, Any]) -> tuple[str, str, str]:
    return data["name"], data["ref"], data["mode"]


class _Leg:
    """Builds the steps of one leg in one pass over its stretches."""

    def __init__(self, engine: Engine, stretches: list[Stretch]) -> None:
        self.engine = engine
        self.junctions = engine.junctions
        self.stretches = stretches
        self._rings: dict[int, tuple[str, str] | None] = {}

    def allowed(self, arriving: int) -> set[int]:
        """Edges a route arriving by edge ``arriving`` may turn into (restrictions applied)."""
        origin = self.engine.origin
        return {origin[node] for node in self.engine.successors[arriving]}

    def intersection(
        self, junction: Junction, node: int, arriving: int, leaving: int, allowed: set[int]
    ) -> dict[str, Any]:
        """OSRM's intersection object at ``node`` for a route from ``arriving`` to ``leaving``."""
        return {
            "location": list(junction.location),
            "bearings": list(junction.bearings),
            "entry": [out >= 0 and out in allowed for out in junction.out],
            "in": self.junctions.in_index[arriving],
            "out": self.junctions.out_index[leaving],
        }

    def exits_passed(
        self, junction: Junction, arriving: int, leaving: int, before: float, allowed: set[int]
    ) -> int:
        """Roundabout exits counted at one ring node: the usable roads off the ring, and when
        ``leaving`` is one of them, only those before it (further right) and itself."""
        edges = self.engine.edges
        offs = [
            (angle, out)
            for angle, out in zip(junction.angles, junction.out, strict=True)
            if out >= 0 and out in allowed and not edges[out]["roundabout"]
        ]
        if edges[leaving]["roundabout"]:
            return len(offs)
        taken = (self.junctions.first_bearing[leaving] - before) % 360.0
        return 1 + sum(
            1 for angle, out in offs if out != leaving and (angle - before) % 360.0 < taken
        )

    def ring(self, node: int) -> tuple[str, str] | None:
        """OSRM's kind of the ring through ``node`` (``roundabout``, ``rotary`` or ``roundabout
        turn``) and its name, or None when it is no proper ring: rings passable both ways, forks
        on the ring, or one without roads off it are plain roads to OSRM."""
        if node in self._rings:
            return self._rings[node]
        edges, at = self.engine.edges, self.junctions.at
        names: set[str] = set()
        connected: set[str] = set()
        exits: list[int] = []
        length = 0.0
        circular = False
        current, seen = node, set()
        found: tuple[str, str] | None = None
        while current not in seen:
            seen.add(current)
            junction = at[current]
            ring_roads = [road for road in junction.road if edges[road]["roundabout"]]
            onward = [out for out in junction.out if out >= 0 and edges[out]["roundabout"]]
            if len(ring_roads) != 2 or len(onward) != 1 or edges[onward[0]]["reverse"] >= 0:
                break
            if len(junction.out) > 2:
                exits.append(current)
            for road in junction.road:
                if not edges[road]["roundabout"]:
                    connected.add(edges[road]["name"])
            edge = edges[onward[0]]
            if edge["name"]:
                names.add(edge["name"])
            circular = circular or edge.get("junction") == "circular"
            length += float(edge["length"])
            current = self.engine.head[onward[0]]
        else:
            found = self._ring_kind(exits, names, connected, length, circular)
        for member in seen:
            self._rings[member] = found
        return found

    def _ring_kind(
        self, exits: list[int], names: set[str], connected: set[str], length: float, circular: bool
    ) -> tuple[str, str] | None:
        if not exits:
            return None
        name = next(iter(names)) if len(names) == 1 else ""
        if len(exits) == 1 and not circular:
            return "roundabout turn", name
        radius = length / (2.0 * math.pi)
        if name and (circular or (name not in connected and radius > MAX_ROUNDABOUT_RADIUS)):
            return "rotary", name
        if circular:
            return None
        if radius < MAX_ROUNDABOUT_INTERSECTION_RADIUS and self._distinct_exits(exits):
            return "roundabout turn", name
        return "roundabout", name

    def _distinct_exits(self, exits: list[int]) -> bool:
        """At most four simple exits whose roads part by more than a narrow turn."""
        if len(exits) > 4:
            return False
        edges, at = self.engine.edges, self.junctions.at
        bearings = []
        for node in exits:
            junction = at[node]
            if len(junction.out) > 3:
                return False
            bearings.append(
                next(
                    angle
                    for angle, road in zip(junction.angles, junction.road, strict=True)
                    if not edges[road]["roundabout"]
                )
            )
        bearings.sort()
        return all(
            abs(bearings[(i + 1) % len(bearings)] - bearings[i]) > NARROW_TURN_ANGLE
            for i in range(len(bearings))
        )

    def classify(
        self,
        junction: Junction,
        arriving: int,
        leaving: int,
        before: float,
        after: float,
        allowed: set[int],
    ) -> tuple[str, str]:
        """Maneuver type and modifier of a turn between two roads outside roundabouts."""
        edges = self.engine.edges
        came, going = edges[arriving], edges[leaving]
        turn = modifier(before, after)
        choices = [out for out in allowed if out != came["reverse"]]
        from_link = came["highway"].endswith("_link")
        to_link = going["highway"].endswith("_link")
        if not from_link and to_link:
            return ("off ramp" if came["highway"] in FAST_ROADS else "on ramp"), turn
        if from_link and going["highway"] in FAST_ROADS:
            return "merge", _side(before, after)
        if len(choices) <= 1:
            return "new name", turn
        first = self.junctions.first_bearing
        ahead = [out for out in choices if angle_difference(first[out], before) < STRAIGHTISH]
        if (
            leaving in ahead
            and len(ahead) >= 2
            and not any(_key(edges[out]) == _key(came) for out in ahead)
        ):
            ahead.sort(key=lambda out: (first[out] - before + 180.0) % 360.0)
            side = (
                "slight left"
                if leaving == ahead[0]
                else "slight right"
                if leaving == ahead[-1]
                else "straight"
            )
            return "fork", side
        road_back = self.junctions.in_index[arriving]
        straight_on = any(
            angle_difference(angle, before) < STRAIGHTISH
            for i, angle in enumerate(junction.angles)
            if i != road_back
        )
        others = [angle for i, angle in enumerate(junction.angles) if i != road_back]
        # OSRM's end of road: a T where the road ends at one running both left and right.
        tee = len(others) == 2 and all(
            any(
                angle_difference(angle, (before + side) % 360.0) < NARROW_TURN_ANGLE
                for angle in others
            )
            for side in (90.0, 270.0)
        )
        if not straight_on and tee and turn in {"left", "right"}:
            return "end of road", turn
        if _key(going) == _key(came) and (came["name"] or came["ref"]):
            return "continue", turn
        if turn == "straight":
            return "new name", turn
        return "turn", turn

    def ring_of(self, edge: int) -> tuple[str, str] | None:
        """The kind and name of the proper ring ``edge`` belongs to, or None."""
        if not self.engine.edges[edge]["roundabout"]:
            return None
        return self.ring(self.engine.head[edge])

    def steps(self) -> list[_Step]:
        """The steps, each from its first stretch to the next step's first stretch."""
        engine, junctions, stretches = self.engine, self.junctions, self.stretches
        edges = engine.edges
        first_points = stretches[0].coords
        depart_after = _line_bearings(first_points)[0]
        steps = [_Step(0, "depart", 0.0, depart_after)]
        ring: _Step | None = None
        exits = 0
        for k in range(1, len(stretches)):
            arriving, leaving = stretches[k - 1].part.edge, stretches[k].part.edge
            node = engine.head[arriving]
            junction = junctions.at[node]
            before = junctions.last_bearing[arriving]
            after = junctions.first_bearing[leaving]
            came, going = edges[arriving], edges[leaving]
            allowed = self.allowed(arriving)
            busy = len(junction.out) >= 3
            came_ring = self.ring_of(arriving)
            going_ring = self.ring_of(leaving)
            if came_ring is not None:
                if ring is None:
                    # The route starts on the ring: exits count from the start.
                    ring = steps[-1]
                    exits = 0
                exits += self.exits_passed(junction, arriving, leaving, before, allowed)
                here = self.intersection(junction, node, arriving, leaving, allowed)
                if going_ring is not None:
                    ring.intersections.append(here)
                    continue
                if ring.kind != "depart":
                    # Entering steps carry the exit taken and the road it leads to.
                    ring.exit, ring.named_by = exits, k
                step = _Step(k, RING_TYPES[came_ring[0]][1], before, after, named_by=k)
                step.modifier, step.exit = modifier(before, after), exits
                step.intersections.append(here)
                steps.append(step)
                ring = None
                continue
            if going_ring is not None:
                step = _Step(k, RING_TYPES[going_ring[0]][0], before, after, named_by=k)
                step.modifier, step.ring_name = modifier(before, after), going_ring[1]
                step.intersections.append(
                    self.intersection(junction, node, arriving, leaving, allowed)
                )
                steps.append(step)
                ring, exits = step, 0
                continue
            same = _key(came) == _key(going)
            turn = modifier(before, after)
            if same and (turn in {"straight", "slight left", "slight right"} or not busy):
                if busy:
                    steps[-1].intersections.append(
                        self.intersection(junction, node, arriving, leaving, allowed)
                    )
                continue
            kind, direction = self.classify(junction, arriving, leaving, before, after, allowed)
            if same and kind == "new name":
                # No choice and nothing new to announce: a bend of the same road.
                continue
            if came["mode"] != going["mode"] and kind in {"new name", "continue"}:
                # A change of travel mode (boarding a ferry, pushing a bike) is announced.
                kind = "notification"
            step = _Step(k, kind, before, after, direction, named_by=k)
            step.intersections.append(self.intersection(junction, node, arriving, leaving, allowed))
            steps.append(step)
        return steps


def _line_bearings(coords: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Bearing of the first and of the last non-degenerate piece of a line."""
    first = last = 0.0
    for i in range(len(coords) - 1):
        if coords[i] != coords[i + 1]:
            first = bearing(*coords[i], *coords[i + 1])
            break
    for i in range(len(coords) - 1, 0, -1):
        if coords[i - 1] != coords[i]:
            last = bearing(*coords[i - 1], *coords[i])
            break
    return first, last


def build_steps(
    engine: Engine, stretches: list[Stretch], geometries: str, mode: str
) -> list[dict[str, Any]]:
    """OSRM route steps for the stretches of one leg, the arrival included."""
    planned = _Leg(engine, stretches).steps()
    # The leg's line once; ``starts[k]`` is the index of stretch ``k``'s first point.
    points: list[tuple[float, float]] = []
    starts: list[int] = []
    for s in stretches:
        if points and points[-1] == s.coords[0]:
            starts.append(len(points) - 1)
            points.extend(s.coords[1:])
        else:
            starts.append(len(points))
            points.extend(s.coords)
    bounds = [step.first for step in planned] + [len(stretches)]
    ranges = []
    for i in range(len(planned)):
        first = starts[bounds[i]]
        last = starts[bounds[i + 1]] if bounds[i + 1] < len(stretches) else len(points) - 1
        ranges.append((first, max(last, first + 1) if len(points) > 1 else first))
    if geometries == "geojson":
        rounded = np.round(np.asarray(points, dtype=np.float64), 6).tolist()
        lines: list[Any] = [
            {"type": "LineString", "coordinates": rounded[a : b + 1] or [rounded[a]] * 2}
            for a, b in ranges
        ]
    else:
        lines = polyline.encode_ranges(points, ranges, 6 if geometries == "polyline6" else 5)
    result = []
    for i, step in enumerate(planned):
        group = stretches[bounds[i] : bounds[i + 1]]
        data = stretches[step.named_by].data
        location = _location(points[ranges[i][0]])
        maneuver: dict[str, Any] = {
            "location": location,
            "bearing_before": round(step.before) % 360 if step.kind != "depart" else 0,
            "bearing_after": round(step.after) % 360,
            "type": step.kind,
        }
        if step.modifier is not None:
            maneuver["modifier"] = step.modifier
        if step.exit is not None:
            maneuver["exit"] = step.exit
        if step.kind == "depart":
            intersections = [
                {
                    "location": location,
                    "bearings": [maneuver["bearing_after"]],
                    "entry": [True],
                    "out": 0,
                },
                *step.intersections,
            ]
        else:
            intersections = step.intersections
        distance = sum(s.distance for s in group)
        duration = sum(s.duration + s.turn for s in group)
        item: dict[str, Any] = {
            "geometry": lines[i],
            "maneuver": maneuver,
            "mode": "ferry" if data["mode"] == "ferry" else mode,
            "driving_side": "right",
            "name": data["name"],
            "intersections": intersections,
            "weight": round(duration, 1),
            "duration": round(duration, 1),
            "distance": round(distance, 1),
        }
        if data["ref"]:
            item["ref"] = data["ref"]
        if data.get("destinations"):
            item["destinations"] = data["destinations"]
        if step.kind == "rotary" and step.ring_name:
            item["rotary_name"] = step.ring_name
        result.append(item)
    result.append(_arrive(stretches, points, geometries, mode))
    return result


def _arrive(
    stretches: list[Stretch], points: list[tuple[float, float]], geometries: str, mode: str
) -> dict[str, Any]:
    end = points[-1]
    before = round(_line_bearings(points)[1]) % 360
    location = _location(end)
    last = stretches[-1].data
    line = [end, end]
    return {
        "geometry": (
            {"type": "LineString", "coordinates": [location, location]}
            if geometries == "geojson"
            else polyline.encode(line, 6 if geometries == "polyline6" else 5)
        ),
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

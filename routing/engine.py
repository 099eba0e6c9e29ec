"""The query engine: an edge-based graph (turn restrictions) under a customizable CH."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import routingkit_cch as rk
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from routing import kernels
from routing.network import EARTH_RADIUS, bearing, haversine
from routing.profiles import MAX_TURN_SECONDS, PROFILES
from routing.settings import SMALL_COMPONENT_SIZE

#: Spacing (m) of the sample points indexing road pieces for snapping.
SAMPLE_SPACING = 20.0
#: Smallest side (m) of the grid cells indexing road pieces for the nearest one.
GRID_CELL_MIN = 20.0


@dataclass(frozen=True)
class Snap:
    """A coordinate moved onto the nearest road: its edge, position along it and distance."""

    edge: int
    #: Position along ``edge`` in its direction, 0 at its tail and 1 at its head.
    fraction: float
    lon: float
    lat: float
    #: Metres between the given coordinate and the snapped one.
    distance: float
    #: False when only ``edge``'s direction may be used (a bearing filter, or a via point a
    #: route continues straight through), not the way back over the same road.
    both: bool = True


class Part(NamedTuple):
    """A stretch of one edge travelled by a route: from ``start`` to ``end`` (fractions)."""

    edge: int
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Path:
    """A route between two snapped points: the edges travelled in order, where it starts on the
    first (a fraction of it) and ends on the last, and its integer weight (ms). Every edge in
    between is travelled whole."""

    edges: NDArray[np.int64]
    start: float
    end: float
    weight: int

    @classmethod
    def from_parts(cls, parts: Sequence[Part], weight: int) -> Path:
        """The path travelling ``parts`` (whole edges but the first and last)."""
        edges = np.fromiter((part.edge for part in parts), np.int64, len(parts))
        return cls(edges, parts[0].start, parts[-1].end, weight)

    @cached_property
    def parts(self) -> tuple[Part, ...]:
        """The stretch of each edge travelled."""
        edges = self.edges.tolist()
        if len(edges) == 1:
            return (Part(edges[0], self.start, self.end),)
        return (
            Part(edges[0], self.start, 1.0),
            *(Part(edge, 0.0, 1.0) for edge in edges[1:-1]),
            Part(edges[-1], 0.0, self.end),
        )

    @cached_property
    def shares(self) -> NDArray[np.float64]:
        """The fraction of each edge travelled."""
        shares = np.ones(len(self.edges))
        shares[0] -= self.start
        shares[-1] -= 1.0 - self.end
        return shares


@dataclass(frozen=True)
class Junction:
    """The roads meeting at a graph node, by ascending bearing away from the node."""

    #: Exact bearings (degrees) of each road leaving the node.
    angles: tuple[float, ...]
    #: The same rounded to integers, as OSRM reports them.
    bearings: tuple[int, ...]
    #: Per road, the edge leaving the node along it, or -1 when it may only be arrived by.
    out: tuple[int, ...]
    #: Per road, one edge of it (for its tags).
    road: tuple[int, ...]
    #: The node's [lon, lat], rounded as OSRM writes locations.
    location: tuple[float, float]


@dataclass(frozen=True)
class Junctions:
    """Per-node and per-edge data the turn-by-turn steps read, computed once per graph."""

    at: dict[int, Junction]
    #: Per edge: its road's index in the junction at its tail, and at its head.
    out_index: list[int]
    in_index: list[int]
    #: Per edge: bearing of its first piece (leaving its tail) and of its last (reaching its head).
    first_bearing: list[float]
    last_bearing: list[float]


def _bearing_arrays(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Initial bearings from each point of ``a`` to the matching point of ``b`` (degrees)."""
    lon1, lat1 = np.radians(a[:, 0]), np.radians(a[:, 1])
    lon2, lat2 = np.radians(b[:, 0]), np.radians(b[:, 1])
    dl = lon2 - lon1
    x = np.sin(dl) * np.cos(lat2)
    y = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dl)
    result: NDArray[np.float64] = (np.degrees(np.arctan2(x, y)) + 360.0) % 360.0
    return result


class _Samples:
    """Points every few metres along the road pieces, indexed for nearest searches."""

    def __init__(self, points: NDArray[np.float64], owner: NDArray[np.int64]) -> None:
        self.tree = cKDTree(points) if len(owner) else None
        #: The road piece of each point.
        self.owner = owner


def angle_difference(a: float, b: float) -> float:
    """The absolute difference of two bearings (0-180)."""
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


class Engine:
    """Routes on one profile's graph: snapping, fastest paths, tables, alternatives."""

    def __init__(
        self, graph: nx.MultiDiGraph, small_component_size: int = SMALL_COMPONENT_SIZE
    ) -> None:
        self.graph = graph
        self.small_component_size = small_component_size
        self.profile: str = graph.graph["profile"]
        self.data_version: str = graph.graph["data_version"]
        count = graph.number_of_edges()
        self.edges: list[dict[str, Any]] = [{} for _ in range(count)]
        self.tail: list[int] = [0] * count
        self.head: list[int] = [0] * count
        for u, v, key, data in graph.edges(keys=True, data=True):
            self.edges[key] = data
            self.tail[key] = u
            self.head[key] = v
        self.weight = [int(data["weight"]) for data in self.edges]
        self.edge_length = np.fromiter((d["length"] for d in self.edges), np.float64, count)
        self.edge_time = np.fromiter((d["travel_time"] for d in self.edges), np.float64, count)
        labels: dict[str, int] = {}
        #: Per edge, the index of its road's label (name, else ref) in ``labels``, or -1.
        self.edge_label = np.fromiter(
            (
                labels.setdefault(label, len(labels)) if label else -1
                for label in (d["name"] or d["ref"] for d in self.edges)
            ),
            np.int64,
            count,
        )
        self.labels = list(labels)
        sizes = np.fromiter((len(data["geometry"]) for data in self.edges), np.int64, count)
        #: Every edge's geometry in one array: edge ``e`` is ``points[offsets[e]:offsets[e+1]]``.
        self.offsets: NDArray[np.int64] = np.concatenate(([0], np.cumsum(sizes)))
        self.points: NDArray[np.float64] = np.asarray(
            [point for data in self.edges for point in data["geometry"]], dtype=np.float64
        ).reshape(-1, 2)
        #: Metres from the start of its edge to each point of ``points``.
        self.along = self._along()
        self._turn_geometry()
        self._compile_turns()
        self._build_cch()
        self._build_snapping()
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load from the disk cache) the kernels now rather than on a request."""
        if self.edges:
            lon, lat = self.points[0]
            self.snap(float(lon), float(lat), radius=None)
            line = self.line(Path(np.zeros(1, dtype=np.int64), 0.0, 1.0, 0))
            kernels.encode_polyline(kernels.simplify(line, 1e-5), 5)

    def _along(self) -> NDArray[np.float64]:
        if not len(self.points):
            return np.zeros(0)
        lon, lat = np.radians(self.points[:, 0]), np.radians(self.points[:, 1])
        a = (
            np.sin(np.diff(lat) / 2) ** 2
            + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2
        )
        steps = np.concatenate(([0.0], 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.minimum(a, 1.0)))))
        # The step into each edge's first point belongs to no edge.
        steps[self.offsets[:-1][self.offsets[:-1] < len(steps)]] = 0.0
        total = np.cumsum(steps)
        sizes = np.diff(self.offsets)
        along: NDArray[np.float64] = total - np.repeat(total[self.offsets[:-1]], sizes)
        return along

    # -- turn graph ---------------------------------------------------------------------------

    def _turn_geometry(self) -> None:
        """Per edge what its turns cost depends on: end bearings, roads at its head, mode."""
        count = len(self.edges)
        first = self.offsets[:-1]
        last = self.offsets[1:] - 1
        if count:
            self._first_bearing = _bearing_arrays(self.points[first], self.points[first + 1])
            self._last_bearing = _bearing_arrays(self.points[last - 1], self.points[last])
        else:
            self._first_bearing = self._last_bearing = np.zeros(0)
        self._reverse = np.fromiter((d["reverse"] for d in self.edges), np.int64, count)
        ends = np.concatenate([np.asarray(self.tail, np.int64), np.asarray(self.head, np.int64)])
        ids, inverse = np.unique(ends, return_inverse=True)
        tails, heads = inverse[:count], inverse[count:]
        # The roads at a node as its junction lists them: every edge leaving it and every
        # one-way edge arriving at it.
        roads = np.bincount(tails, minlength=len(ids)) + np.bincount(
            heads[self._reverse < 0], minlength=len(ids)
        )
        self._head_roads: NDArray[np.int64] = roads[heads]
        modes: dict[str, int] = {}
        self._mode = np.fromiter(
            (modes.setdefault(d["mode"], len(modes)) for d in self.edges), np.int64, count
        )
        self._turn_costs = PROFILES[self.profile].turns
        #: Per edge, whether it is open only to reach places on it (``destination`` access).
        self.restricted: NDArray[np.bool_] = np.fromiter(
            (d.get("restricted", False) for d in self.edges), np.bool_, count
        )

    def restricted_ms(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
        """Weight (ms) added to each turn from ``a`` into ``b`` on top of its duration: OSRM's
        ``max_turn_weight`` where an open road enters a restricted one, else 0."""
        entering = self.restricted[b] & ~self.restricted[a]
        result: NDArray[np.int64] = np.where(entering, round(MAX_TURN_SECONDS * 1000), 0)
        return result

    def turn_ms(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
        """Milliseconds of turning from each edge of ``a`` into the matching edge of ``b``,
        which leaves ``a``'s head (the profile's turn costs)."""
        angle = (self._first_bearing[b] - self._last_bearing[a] + 540.0) % 360.0 - 180.0
        u_turn = self._reverse[a] == b
        # OSRM measures a U-turn as 180 degrees to the right.
        angle = np.where(u_turn, 180.0, angle)
        seconds = self._turn_costs.seconds(
            angle, self._head_roads[a], u_turn, self._mode[a] != self._mode[b]
        )
        result: NDArray[np.int64] = np.rint(seconds * 1000.0).astype(np.int64)
        return result

    def _path_turn_ms(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        """Milliseconds of each turn between consecutive ``edges``: looked up among the arcs,
        computed for any pair that is not one."""
        a, b = edges[:-1], edges[1:]
        keys = a * len(self.edges) + b
        index = np.minimum(np.searchsorted(self._arc_keys, keys), max(0, len(self._arc_keys) - 1))
        if len(self._arc_keys):
            found = self._arc_keys[index] == keys
            if found.all():
                looked_up: NDArray[np.int64] = self._arc_turn[index]
                return looked_up
        result = self.turn_ms(a, b)
        return result

    def turns(self, path: Path) -> NDArray[np.int64]:
        """Milliseconds of the turn into each edge of ``path`` (0 for the first)."""
        result = np.zeros(len(path.edges), dtype=np.int64)
        if len(path.edges) > 1:
            result[1:] = self._path_turn_ms(path.edges)
        return result

    def _compile_turns(self) -> None:
        out: dict[int, list[int]] = defaultdict(list)
        #: The edges arriving at each node.
        self.arriving: dict[int, list[int]] = defaultdict(list)
        for key in range(len(self.edges)):
            out[self.tail[key]].append(key)
            self.arriving[self.head[key]].append(key)
        #: The edges leaving each node.
        self.leaving = out
        blocked = set(self.graph.graph.get("barriers", ()))
        successors: list[list[int]] = []
        for key, data in enumerate(self.edges):
            node = self.head[key]
            others = [b for b in out[node] if b != data["reverse"]]
            if node in blocked or not others:
                # Turning back is allowed only where nothing else is (dead ends, barriers).
                successors.append([data["reverse"]] if data["reverse"] >= 0 else [])
            else:
                successors.append(others)
        forbidden: set[tuple[int, int]] = set()
        only: dict[int, set[int]] = defaultdict(set)
        via_way = []
        for kind, a, via, b in self.graph.graph.get("restrictions", ()):
            if via:
                via_way.append((kind, a, via, b))
            elif kind == "no":
                forbidden.add((a, b))
            else:
                only[a].add(b)
        for a, nexts in enumerate(successors):
            if a in only:
                nexts[:] = [b for b in nexts if b in only[a]]
            if forbidden:
                nexts[:] = [b for b in nexts if (a, b) not in forbidden]
        #: Turn-graph nodes: one per edge, then copies of via-way edges (state "entered from
        #: the restriction's from-edge"); ``origin`` maps each back to its edge.
        origin = list(range(len(self.edges)))
        for kind, a, via, b in via_way:
            if via[0] not in successors[a]:
                continue
            copies = list(range(len(origin), len(origin) + len(via)))
            origin.extend(via)
            successors.extend([] for _ in via)
            successors[a] = [copies[0] if x == via[0] else x for x in successors[a]]
            for i, (edge, copy) in enumerate(zip(via, copies, strict=True)):
                if i + 1 < len(via):
                    rest = [x for x in successors[edge] if x != via[i + 1]]
                    successors[copy] = [*rest, copies[i + 1]]
                elif kind == "no":
                    successors[copy] = [x for x in successors[edge] if x != b]
                else:
                    successors[copy] = [x for x in successors[edge] if x == b]
        self.origin = origin
        self._origin = np.asarray(origin, dtype=np.int64)
        self.successors = successors
        self.copies: dict[int, list[int]] = defaultdict(list)
        for node, edge in enumerate(origin):
            self.copies[edge].append(node)

    def _build_cch(self) -> None:
        tails = [node for node, nexts in enumerate(self.successors) for _ in nexts]
        heads = [nxt for nexts in self.successors for nxt in nexts]
        # An arc costs its tail edge and the turn into its head edge (copies turn like their
        # originals).
        a = self._origin[np.asarray(tails, dtype=np.int64)]
        b = self._origin[np.asarray(heads, dtype=np.int64)]
        turn = self.turn_ms(a, b)
        # What the search minimises: durations, plus the restricted-area penalty.
        turn_weight = turn + self.restricted_ms(a, b)
        #: Per turn-graph node, the turn weight (ms) of each of its ``successors``.
        self.successor_turns: list[list[int]] = []
        position = 0
        turn_list = turn_weight.tolist()
        for nexts in self.successors:
            self.successor_turns.append(turn_list[position : position + len(nexts)])
            position += len(nexts)
        weights = (np.asarray(self.weight, dtype=np.int64)[a] + turn_weight).tolist()
        # The turn (duration) of every pair of edges an arc joins, sorted by pair, for durations.
        keys = a * len(self.edges) + b
        by_pair = np.argsort(keys, kind="stable")
        self._arc_keys: NDArray[np.int64] = keys[by_pair]
        self._arc_turn: NDArray[np.int64] = turn[by_pair]
        count = len(self.origin)
        lats: list[float] = []
        lons: list[float] = []
        for node in range(count):
            lon, lat = self.edges[self.origin[node]]["geometry"][0]
            lons.append(lon)
            lats.append(lat)
        self.arcs = (tails, heads, weights)
        if count == 0:
            self._metric = None
            return
        order = rk.compute_order_inertial(count, tails, heads, lats, lons)
        self._cch = rk.CCH(order, tails, heads, False)
        self._metric = rk.CCHMetric(self._cch, weights)

    def turn_graph(self) -> nx.DiGraph:
        """The edge-based graph the engine searches, as networkx (the reference in tests)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(self.origin)))
        tails, heads, weights = self.arcs
        for tail, head, weight in zip(tails, heads, weights, strict=True):
            graph.add_edge(tail, head, weight=weight)
        return graph

    @cached_property
    def junctions(self) -> Junctions:
        """The roads at every node with their bearings (built on first use of steps)."""
        count = len(self.edges)
        first_bearing: list[float] = self._first_bearing.tolist()
        last_bearing: list[float] = self._last_bearing.tolist()
        roads: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
        for key in range(count):
            roads[self.tail[key]].append((first_bearing[key], key, key))
            if self.edges[key]["reverse"] < 0:
                roads[self.head[key]].append(((last_bearing[key] + 180.0) % 360.0, -1, key))
        at: dict[int, Junction] = {}
        out_index = [0] * count
        in_index = [0] * count
        keys = list(roads)
        # np.round, like the geometries, so a location equals its point in the route line.
        lonlat = np.round(
            np.asarray([(self.graph.nodes[n]["x"], self.graph.nodes[n]["y"]) for n in keys]), 6
        ).reshape(-1, 2)
        places = {
            node: (float(lon), float(lat))
            for node, (lon, lat) in zip(keys, lonlat.tolist(), strict=True)
        }
        for node, found in roads.items():
            found.sort()
            at[node] = Junction(
                tuple(angle for angle, _, _ in found),
                tuple(round(angle) % 360 for angle, _, _ in found),
                tuple(out for _, out, _ in found),
                tuple(road for _, _, road in found),
                places[node],
            )
            for i, (_, out, road) in enumerate(found):
                if out >= 0:
                    out_index[out] = i
                    reverse = self.edges[out]["reverse"]
                    if reverse >= 0:
                        in_index[reverse] = i
                else:
                    in_index[road] = i
        return Junctions(at, out_index, in_index, first_bearing, last_bearing)

    # -- snapping -----------------------------------------------------------------------------

    def _project(self, lon: Any, lat: Any) -> tuple[Any, Any]:
        x = np.radians(lon) * EARTH_RADIUS * self._cos
        y = np.radians(lat) * EARTH_RADIUS
        return x, y

    def small(self, snap: Snap) -> bool:
        """Whether every direction ``snap`` may be travelled in lies on a small part of the
        graph the engine searches (see ``SMALL_COMPONENT_SIZE``): a trap, such as a one-way
        dead end or a road whose every exit is turn-restricted, or a lone driveway."""
        return all(bool(self.edge_small[edge]) for edge, _ in self.directions(snap))

    def components(self, snap: Snap) -> frozenset[int]:
        """The strongly connected parts of the turn graph ``snap``'s directions lie on."""
        return frozenset(int(self.edge_component[edge]) for edge, _ in self.directions(snap))

    def connected(self, snaps: Sequence[Snap]) -> bool:
        """Whether ``snaps`` all lie on one strongly connected part with a cycle, where each
        reaches every other (a lone one-way edge reaches nothing behind a point on it)."""
        shared = frozenset.intersection(*(self.components(snap) for snap in snaps))
        return any(self._component_size[part] > 1 for part in shared)

    def _components(self) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Per edge, its strongly connected component in the turn graph (the edge-based graph
        with turn restrictions that routes are searched on, as OSRM computes them) and whether
        that one is small. An edge from which the rest cannot be reached, or which cannot be
        reached from it, is alone or in a small part."""
        count = len(self.edges)
        #: Turn-graph nodes (road directions) of each strongly connected part.
        self._component_size: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if not count:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
        nodes = len(self.origin)
        tails, heads, _ = self.arcs
        arcs = csr_matrix(
            (np.ones(len(tails), dtype=np.int8), (np.asarray(tails), np.asarray(heads))),
            shape=(nodes, nodes),
        )
        _, labels = connected_components(arcs, directed=True, connection="strong")
        labels = np.asarray(labels, dtype=np.int64)
        size = np.bincount(labels, minlength=1)
        self._component_size = size
        # Turn-graph node ``e`` is edge ``e`` itself (copies come after the edges).
        component = labels[:count]
        # Below the threshold (a small extract) the part holding most roads is the main one.
        largest = int(np.argmax(size))
        main = largest if 2 * size[largest] > nodes else -1
        small: NDArray[np.bool_] = (size[component] < self.small_component_size) & (
            component != main
        )
        return component, small

    def _build_snapping(self) -> None:
        lats = [self.graph.nodes[n]["y"] for n in self.graph.nodes]
        self._cos = math.cos(math.radians(float(np.mean(lats)) if lats else 0.0))
        self.edge_component, self.edge_small = self._components()
        #: Per edge, whether a route may start or end on it (see ``startpoint`` in build.py).
        self.startpoint: NDArray[np.bool_] = np.fromiter(
            (d.get("startpoint", True) for d in self.edges), np.bool_, len(self.edges)
        )
        piece_edge: list[int] = []
        piece_offset: list[float] = []
        starts: list[tuple[float, float]] = []
        ends: list[tuple[float, float]] = []
        for key, data in enumerate(self.edges):
            if 0 <= data["reverse"] < key:
                continue
            geometry = data["geometry"]
            offset = 0.0
            for a, b in zip(geometry, geometry[1:], strict=False):
                piece_edge.append(key)
                piece_offset.append(offset)
                starts.append(a)
                ends.append(b)
                offset += haversine(*a, *b)
        self._piece_edge = np.asarray(piece_edge, dtype=np.int64)
        self._piece_offset = np.asarray(piece_offset, dtype=np.float64)
        start = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
        end = np.asarray(ends, dtype=np.float64).reshape(-1, 2)
        self._piece_lonlat = (start, end)
        x0, y0 = self._project(start[:, 0], start[:, 1])
        x1, y1 = self._project(end[:, 0], end[:, 1])
        self._piece_xy: NDArray[np.float64] = np.stack([x0, y0, x1, y1], axis=1)
        lengths = np.hypot(x1 - x0, y1 - y0)
        counts = np.maximum(1, np.ceil(lengths / SAMPLE_SPACING).astype(np.int64)) + 1
        owner = np.repeat(np.arange(len(lengths)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        step = (np.arange(len(owner)) - first) / (counts[owner] - 1)
        samples = np.stack(
            [
                x0[owner] + (x1[owner] - x0[owner]) * step,
                y0[owner] + (y1[owner] - y0[owner]) * step,
            ],
            axis=1,
        )
        # Pieces a coordinate may snap onto: not where no route may start (a private
        # driveway); "large" ones also on a part of the graph the rest is reachable from.
        self._piece_allowed: NDArray[np.bool_] = self.startpoint[self._piece_edge]
        # A road is large where either direction is (the other may be a trap).
        reverse = self._reverse[self._piece_edge]
        large_piece = ~self.edge_small[self._piece_edge] | (
            (reverse >= 0) & ~self.edge_small[np.maximum(reverse, 0)]
        )
        self._piece_large: NDArray[np.bool_] = self._piece_allowed & large_piece
        allowed = self._piece_allowed[owner]
        large = self._piece_large[owner]
        self._sample_points = (samples, owner)
        self._samples = (
            self._any_samples if allowed.all() else _Samples(samples[allowed], owner[allowed])
        )
        self._large_samples = (
            self._samples if large.all() else _Samples(samples[large], owner[large])
        )
        # The grid for the common single nearest road: about one piece per cell.
        area = (
            float(np.ptp(self._piece_xy[:, 0::2]) * np.ptp(self._piece_xy[:, 1::2]))
            if len(lengths)
            else 0.0
        )
        self._cell = max(GRID_CELL_MIN, math.sqrt(area / max(1, len(lengths))))
        self._grid = kernels.build_grid(self._piece_xy, self._cell)

    @cached_property
    def _any_samples(self) -> _Samples:
        """The samples of every road piece, start points or not (``snapping=any``)."""
        return _Samples(*self._sample_points)

    @cached_property
    def _piece_any(self) -> NDArray[np.bool_]:
        return np.ones(len(self._piece_edge), dtype=np.bool_)

    def snap(
        self,
        lon: float,
        lat: float,
        *,
        radius: float | None,
        number: int = 1,
        bearing: tuple[float, float] | None = None,
        large_only: bool = False,
        any_edge: bool = False,
    ) -> list[Snap]:
        """The ``number`` nearest distinct roads within ``radius`` metres (all if None); with
        ``bearing`` (value, range in degrees) only roads travelled in such a direction, the
        snap then restricted to the matching direction(s); with ``large_only`` only roads of
        components that are not small; with ``any_edge`` also roads no route may start on (OSRM's
        ``snapping=any``)."""
        if large_only:
            samples, allowed = self._large_samples, self._piece_large
        elif any_edge:
            samples, allowed = self._any_samples, self._piece_any
        else:
            samples, allowed = self._samples, self._piece_allowed
        if samples.tree is None:
            return []
        px = math.radians(lon) * EARTH_RADIUS * self._cos
        py = math.radians(lat) * EARTH_RADIUS
        if number == 1 and bearing is None:
            left, bottom, columns, rows, starts, members = self._grid
            piece, t, _ = kernels.nearest_piece(
                px,
                py,
                self._piece_xy,
                allowed,
                left,
                bottom,
                self._cell,
                columns,
                rows,
                starts,
                members,
                math.inf if radius is None else radius * 1.01 + 1.0,
            )
            if piece < 0:
                return []
            snap = self._snap_on(piece, t, lon, lat)
            return [] if radius is not None and snap.distance > radius else [snap]
        total = len(samples.owner)
        k = min(total, max(16, number * 16) * (8 if bearing is not None else 1))
        distances, indices = samples.tree.query((px, py), k=k)
        distances = np.atleast_1d(distances)
        indices = np.atleast_1d(indices)
        reach = float(distances[0]) + SAMPLE_SPACING
        if number > 1:
            reach = max(reach, float(distances[-1]))
        if bearing is not None or k == total or float(distances[-1]) > reach + 1.0:
            # The k nearest samples already hold every sample within reach: no second search.
            candidates = indices
        else:
            close = samples.tree.query_ball_point((px, py), reach + 1.0)
            candidates = np.asarray(close + indices.tolist(), dtype=np.int64)
        pieces = np.unique(samples.owner[candidates])
        xy = self._piece_xy[pieces]
        d = xy[:, 2:] - xy[:, :2]
        rel = np.array((px, py)) - xy[:, :2]
        norm = np.einsum("ij,ij->i", d, d)
        t = np.clip(np.einsum("ij,ij->i", rel, d) / np.maximum(norm, 1e-9), 0.0, 1.0)
        off = rel - d * t[:, None]
        gap = np.einsum("ij,ij->i", off, off)
        found: list[Snap] = []
        seen: set[int] = set()
        order = np.argsort(gap, kind="stable").tolist() if len(gap) > 1 else [0]
        for i in order:
            piece = int(pieces[i])
            snap = self._snap_on(piece, float(t[i]), lon, lat)
            if snap.edge in seen:
                continue
            if radius is not None and snap.distance > radius:
                break
            seen.add(snap.edge)
            if bearing is not None:
                bearing_snap = self._bearing_snap(snap, piece, bearing)
                if bearing_snap is None or large_only and self.small(bearing_snap):
                    continue
                snap = bearing_snap
            found.append(snap)
            if len(found) >= number:
                break
        return found

    def _snap_on(self, piece: int, t: float, lon: float, lat: float) -> Snap:
        """(lon, lat) moved to the position ``t`` (0-1) along road piece ``piece``."""
        edge = int(self._piece_edge[piece])
        start, end = self._piece_lonlat[0][piece], self._piece_lonlat[1][piece]
        slon = float(start[0] + (end[0] - start[0]) * t)
        slat = float(start[1] + (end[1] - start[1]) * t)
        length = self.edges[edge]["length"]
        along = float(self._piece_offset[piece]) + haversine(
            float(start[0]), float(start[1]), slon, slat
        )
        fraction = min(1.0, along / length) if length > 0 else 0.0
        return Snap(edge, fraction, slon, slat, haversine(lon, lat, slon, slat))

    def _bearing_snap(self, snap: Snap, piece: int, wanted: tuple[float, float]) -> Snap | None:
        """``snap`` kept to the direction(s) of its road within ``wanted`` (bearing, range)."""
        start, end = self._piece_lonlat[0][piece], self._piece_lonlat[1][piece]
        heading = bearing(float(start[0]), float(start[1]), float(end[0]), float(end[1]))
        value, spread = wanted
        forward = angle_difference(heading, value) <= spread
        reverse = self.edges[snap.edge]["reverse"]
        backward = reverse >= 0 and angle_difference((heading + 180.0) % 360.0, value) <= spread
        if forward and backward:
            return snap
        if forward:
            return replace(snap, both=False)
        if backward:
            return replace(snap, edge=reverse, fraction=1.0 - snap.fraction, both=False)
        return None

    # -- queries ------------------------------------------------------------------------------

    def directions(self, snap: Snap) -> list[tuple[int, float]]:
        """The edges a snapped point lies on, each with the point's fraction along it."""
        found = [(snap.edge, snap.fraction)]
        reverse = self.edges[snap.edge]["reverse"]
        if reverse >= 0 and snap.both:
            found.append((reverse, 1.0 - snap.fraction))
        return found

    def sources(self, snap: Snap, *, penalties: bool = True) -> dict[int, tuple[int, int]]:
        """Turn-graph nodes a route from ``snap`` starts on: node -> (initial cost, edge);
        without ``penalties``, the costs leave out entering a restricted road.

        A point at the very end of its edge is the junction there: left by any road leaving it,
        without a turn."""
        found: dict[int, tuple[int, int]] = {}
        for edge, fraction in self.directions(snap):
            if fraction >= 1.0:
                leaving = np.asarray(self.leaving[self.head[edge]], dtype=np.int64)
                # No turn, but entering a restricted road from an open one still weighs.
                entering = self.restricted_ms(np.full(len(leaving), edge), leaving)
                if not penalties:
                    entering[:] = 0
                onward = list(zip(leaving.tolist(), entering.tolist(), strict=True))
            else:
                rest = round((1.0 - fraction) * self.weight[edge])
                nexts = self.successors[edge]
                turns = np.asarray(self.successor_turns[edge], dtype=np.int64)
                if not penalties:
                    origins = self._origin[np.asarray(nexts, dtype=np.int64)]
                    turns = turns - self.restricted_ms(np.full(len(nexts), edge), origins)
                onward = list(zip(nexts, (rest + turns).tolist(), strict=True))
            for nxt, cost in onward:
                if nxt not in found or cost < found[nxt][0]:
                    found[nxt] = (cost, edge)
        return found

    def targets(self, snap: Snap) -> dict[int, int]:
        """Turn-graph nodes a route to ``snap`` ends on: node -> cost of the last stretch.

        A point at the very start of its edge is the junction there: reached at the end of any
        road arriving at it, without the turn into the edge."""
        found: dict[int, int] = {}
        for edge, fraction in self.directions(snap):
            ends = [(edge, round(fraction * self.weight[edge]))]
            if fraction <= 0.0:
                ends = [
                    (arriving, self.weight[arriving]) for arriving in self.arriving[self.tail[edge]]
                ]
            for last, cost in ends:
                for node in self.copies[last]:
                    if node not in found or cost < found[node]:
                        found[node] = cost
        return found

    def _direct(self, start: Snap, end: Snap) -> Path | None:
        best: Path | None = None
        ends = dict(self.directions(end))
        for edge, fraction in self.directions(start):
            if edge in ends and ends[edge] >= fraction:
                weight = round(ends[edge] * self.weight[edge]) - round(fraction * self.weight[edge])
                if best is None or weight < best.weight:
                    best = Path(np.asarray([edge]), fraction, ends[edge], weight)
        return best

    def route(self, start: Snap, end: Snap) -> Path | None:
        """The fastest path from ``start`` to ``end``, or None when there is none."""
        best = self._direct(start, end)
        sources = self.sources(start)
        targets = self.targets(end)
        if not sources or not targets or self._metric is None:
            return best
        query = rk.CCHQuery(self._metric)
        result = query.run_multi(
            [(node, cost) for node, (cost, _) in sources.items()], list(targets.items())
        )
        distance = result.distance
        nodes = list(result.node_path) if distance is not None else []
        del result, query
        if distance is None or (best is not None and best.weight <= distance):
            return best
        return self._path(start, end, sources, nodes, int(distance))

    def _path(
        self,
        start: Snap,
        end: Snap,
        sources: dict[int, tuple[int, int]],
        nodes: list[int],
        weight: int,
    ) -> Path:
        first_edge = sources[nodes[0]][1]
        first_fraction = dict(self.directions(start))[first_edge]
        last_edge = self.origin[nodes[-1]]
        # An edge not under ``end`` arrives at the junction ``end`` lies at: travelled whole.
        last_fraction = dict(self.directions(end)).get(last_edge, 1.0)
        edges = np.empty(len(nodes) + 1, dtype=np.int64)
        edges[0] = first_edge
        edges[1:-1] = self._origin[nodes[:-1]]
        edges[-1] = last_edge
        # Leave out the ends not travelled at all (a point snapped onto a junction).
        if first_fraction >= 1.0:
            edges, first_fraction = edges[1:], 0.0
        if last_fraction <= 0.0 and len(edges) > 1:
            edges, last_fraction = edges[:-1], 1.0
        if len(edges) == 1 and last_fraction < first_fraction:
            last_fraction = first_fraction
        return Path(edges, first_fraction, last_fraction, weight)

    def weight_of(self, start: Snap, end: Snap) -> int | None:
        """Only the weight (ms) of the fastest path, or None."""
        path = self.route(start, end)
        return None if path is None else path.weight

    def weights(
        self, starts: Sequence[Snap], ends: Sequence[Snap], *, penalties: bool = True
    ) -> list[list[int | None]]:
        """The weight (ms) of the fastest path from each of ``starts`` to each of ``ends``
        (None where there is none): one search per start towards every end at once. Without
        ``penalties``, the fastest path were restricted roads open (their weight is their
        duration)."""
        metric = self._metric if penalties else self._duration_metric
        pinned: list[int] = []
        #: Per end, its pinned turn-graph nodes (as indices into ``pinned``) and their costs.
        reached: list[list[tuple[int, int]]] = []
        for end in ends:
            found = self.targets(end)
            reached.append([(len(pinned) + k, cost) for k, cost in enumerate(found.values())])
            pinned.extend(found)
        query = rk.CCHOneToMany(metric, pinned) if pinned and metric else None
        rows: list[list[int | None]] = []
        for start in starts:
            sources = self.sources(start, penalties=penalties)
            far: list[int | None] = [None] * len(pinned)
            if query is not None and sources:
                far = query.distances_from_multi([(n, cost) for n, (cost, _) in sources.items()])
            row: list[int | None] = []
            for end, nodes in zip(ends, reached, strict=True):
                costs = [d + cost for k, cost in nodes if (d := far[k]) is not None]
                direct = self._direct(start, end)
                if direct is not None:
                    costs.append(direct.weight)
                row.append(min(costs) if costs else None)
            rows.append(row)
        return rows

    @cached_property
    def _duration_metric(self) -> rk.CCHMetric | None:
        """The CCH customized to durations: the arcs without the restricted-road penalty."""
        if self._metric is None:
            return None
        tails, heads, weights = self.arcs
        a = self._origin[np.asarray(tails, dtype=np.int64)]
        b = self._origin[np.asarray(heads, dtype=np.int64)]
        plain = np.asarray(weights, dtype=np.int64) - self.restricted_ms(a, b)
        return rk.CCHMetric(self._cch, plain.tolist())

    def durations(self, starts: Sequence[Snap], ends: Sequence[Snap]) -> list[list[float | None]]:
        """Seconds of the fastest path from each of ``starts`` to each of ``ends`` (None where
        there is none): its weight, unless that holds a restricted-road penalty; then the path
        is followed for its duration."""
        rows = self.weights(starts, ends)
        penalty = round(MAX_TURN_SECONDS * 1000)
        if not any(w is not None and w >= penalty for row in rows for w in row):
            return [[None if w is None else w / 1000.0 for w in row] for row in rows]
        # A path weighing less than a penalty above the fastest one with restricted roads
        # open can hold no penalty: its weight is its duration.
        plain = self.weights(starts, ends, penalties=False)
        result: list[list[float | None]] = []
        for start, row, bound in zip(starts, rows, plain, strict=True):
            line: list[float | None] = []
            for end, weight, fastest in zip(ends, row, bound, strict=True):
                if weight is None or fastest is not None and weight - fastest < penalty:
                    line.append(None if weight is None else weight / 1000.0)
                else:
                    path = self.route(start, end)
                    line.append(None if path is None else self.duration(path))
            result.append(line)
        return result

    def alternatives(self, start: Snap, end: Snap, best: Path, count: int) -> list[Path]:
        """Up to ``count`` reasonable other paths: through a via edge, ≤ 40 % slower, sharing
        at most 60 % of their length with the routes already chosen."""
        if count <= 0:
            return []
        chosen = [best]
        used = {part.edge for part in best.parts}
        lons = [lon for part in best.parts for lon, _ in self.edges[part.edge]["geometry"]]
        lats = [lat for part in best.parts for _, lat in self.edges[part.edge]["geometry"]]
        pad_lon = (max(lons) - min(lons)) * 0.3 + 0.002
        pad_lat = (max(lats) - min(lats)) * 0.3 + 0.002
        candidates = [
            key
            for key, data in enumerate(self.edges)
            if key not in used
            and min(lons) - pad_lon <= data["geometry"][0][0] <= max(lons) + pad_lon
            and min(lats) - pad_lat <= data["geometry"][0][1] <= max(lats) + pad_lat
        ]
        rng = random.Random(start.edge * 7919 + end.edge)
        rng.shuffle(candidates)
        found: list[Path] = []
        for via in candidates[:60]:
            lon, lat = self.edges[via]["geometry"][0]
            middle = Snap(via, 0.0, lon, lat, 0.0)
            first = self.route(start, middle)
            second = self.route(middle, end) if first is not None else None
            if first is None or second is None:
                continue
            weight = first.weight + second.weight
            if weight > best.weight * 1.4:
                continue
            parts = _join(first.parts, second.parts)
            edges = [part.edge for part in parts]
            if len(set(edges)) != len(edges):
                continue
            path = Path.from_parts(parts, weight)
            length = self.length(path)
            if any(self._shared(path, other) > 0.6 * length for other in chosen):
                continue
            chosen.append(path)
            found.append(path)
            if len(found) >= count:
                break
        return sorted(found, key=lambda path: path.weight)

    def _shared(self, path: Path, other: Path) -> float:
        edges = {part.edge for part in other.parts}
        edges |= {self.edges[e]["reverse"] for e in edges}
        return sum(
            float(self.edges[part.edge]["length"]) * (part.end - part.start)
            for part in path.parts
            if part.edge in edges
        )

    def length(self, path: Path) -> float:
        """Metres travelled along ``path``."""
        return float(self.edge_length[path.edges] @ path.shares)

    def duration(self, path: Path) -> float:
        """Seconds travelled along ``path``, the turns on the way included."""
        seconds = float(self.edge_time[path.edges] @ path.shares)
        if len(path.edges) > 1:
            seconds += float(self._path_turn_ms(path.edges).sum()) / 1000.0
        return seconds

    def summary(self, path: Path) -> str:
        """The two roads (names, else refs) ``path`` travels longest, in the order travelled."""
        labels = self.edge_label[path.edges]
        # Metres per label, unnamed roads (-1) in slot 0.
        totals = np.bincount(labels + 1, weights=self.edge_length[path.edges] * path.shares)
        totals[0] = 0.0
        best: list[int] = []
        for _ in range(2):
            label = int(np.argmax(totals))
            if totals[label] <= 0.0:
                break
            best.append(label - 1)
            totals[label] = 0.0
        # In the order travelled: where each is last travelled.
        best.sort(key=lambda label: int(np.flatnonzero(labels == label)[-1]))
        return ", ".join(self.labels[label] for label in best)

    def line(self, path: Path) -> NDArray[np.float64]:
        """The coordinates of ``path``, without repeated consecutive points (at least two)."""
        return kernels.route_line(
            path.edges, path.start, path.end, self.offsets, self.points, self.along
        )


def _join(first: tuple[Part, ...], second: tuple[Part, ...]) -> tuple[Part, ...]:
    """Two consecutive paths as one; the via point is the start of an edge."""
    parts = [part for part in first if part.end > part.start]
    rest = list(second)
    if parts and rest and parts[-1].edge == rest[0].edge:
        rest[0] = Part(rest[0].edge, parts[-1].start, rest[0].end)
        parts.pop()
    return tuple(parts + [part for part in rest if part.end > part.start])


def dedupe(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """``points`` without repeated consecutive points, at least two of them."""
    if len(points) > 1:
        keep = np.ones(len(points), dtype=bool)
        keep[1:] = np.any(points[1:] != points[:-1], axis=1)
        points = points[keep]
    if len(points) == 1:
        points = np.concatenate([points, points])
    return points

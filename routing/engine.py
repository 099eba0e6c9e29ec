"""The query engine: an edge-based graph (turn restrictions) under a customizable CH."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import mmap
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import routingkit_cch as rk
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from routing import cch, kernels
from routing.arrays import cumulative_lengths, edge_along, within
from routing.build import NUMBER_PREFIX, RESTRICTION_NO, TEXT_PREFIX, graph_arrays
from routing.network import EARTH_RADIUS, bearing, haversine
from routing.profiles import MAX_TURN_SECONDS, PROFILES
from routing.settings import SMALL_COMPONENT_SIZE
from routing.store import Arrays

#: Spacing (m) of the sample points indexing road pieces for snapping.
SAMPLE_SPACING = 20.0
#: Smallest side (m) of the grid cells indexing road pieces for the nearest one.
GRID_CELL_MIN = 20.0
#: The C library, for ``malloc_trim`` (glibc's).
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


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
class Route:
    """A route between two snapped points: the edges travelled in order, where it starts on the
    first (a fraction of it) and ends on the last, and its integer weight (ms). Every edge in
    between is travelled whole."""

    edges: NDArray[np.int64]
    start: float
    end: float
    weight: int

    @classmethod
    def from_parts(cls, parts: Sequence[Part], weight: int) -> Route:
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

    at: Mapping[int, Junction]
    #: Per edge: its road's index in the junction at its tail, and at its head.
    out_index: Sequence[int]
    in_index: Sequence[int]
    #: Per edge: bearing of its first piece (leaving its tail) and of its last (reaching its head).
    first_bearing: NDArray[np.float64]
    last_bearing: NDArray[np.float64]


def _bearing_arrays(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Initial bearings from each point of ``a`` to the matching point of ``b`` (degrees)."""
    lon1, lat1 = np.radians(a[:, 0]), np.radians(a[:, 1])
    lon2, lat2 = np.radians(b[:, 0]), np.radians(b[:, 1])
    dl = lon2 - lon1
    x = np.sin(dl) * np.cos(lat2)
    y = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dl)
    result: NDArray[np.float64] = (np.degrees(np.arctan2(x, y)) + 360.0) % 360.0
    return result


def projection_cos(node_lat: NDArray[np.float64]) -> float:
    """The scale of longitudes in the snapping index's projection: the cosine of the nodes'
    mean latitude, rounded (as the grid's cell size is) so that a road moved a little changes
    its own pieces and cells only, not every projected piece: an update then rewrites only the
    stored chunks around it."""
    mean_lat = round(float(np.mean(node_lat)), 2) if len(node_lat) else 0.0
    return math.cos(math.radians(mean_lat))


def piece_offsets(
    piece_edge: NDArray[np.int64], start: NDArray[np.float64], end: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Metres along its edge to each piece (pieces of an edge in a row), summed as the edge's
    length was (a point at the end of an edge is at fraction 1.0 exactly)."""
    first_piece = np.ones(len(piece_edge), dtype=np.bool_)
    first_piece[1:] = piece_edge[1:] != piece_edge[:-1]
    return cumulative_lengths(np.concatenate([start, end], axis=1), first_piece)


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


class _Csr(Sequence[list[int]]):
    """Rows of a compressed sparse row table: row ``i`` is ``values[offsets[i]:offsets[i+1]]``."""

    def __init__(self, offsets: NDArray[np.int64], values: NDArray[Any]) -> None:
        self.offsets = offsets
        self.values = values

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[int]:  # type: ignore[override]
        return self.values[self.offsets[i] : self.offsets[i + 1]].tolist()  # type: ignore[no-any-return]


class _ByNode(Mapping[int, list[int]]):
    """Edges per OSM node id (leaving or arriving), from a table per node index."""

    def __init__(self, node_ids: NDArray[np.int64], rows: _Csr) -> None:
        self.node_ids = node_ids
        self.rows = rows

    def index(self, node: int) -> int:
        """The node's index, or -1 when it is no node of the graph."""
        i = int(np.searchsorted(self.node_ids, node))
        return i if i < len(self.node_ids) and self.node_ids[i] == node else -1

    def __getitem__(self, node: int) -> list[int]:
        i = self.index(node)
        return self.rows[i] if i >= 0 else []

    def __iter__(self) -> Iterator[int]:
        return iter(self.node_ids.tolist())

    def __len__(self) -> int:
        return len(self.node_ids)


class _NodeIds:
    """The OSM id of a node per edge (``tail[e]``, or of an array of edges), looked up when
    asked rather than kept: an array as long as the edges, per end, otherwise."""

    def __init__(self, node_ids: NDArray[np.int64], index: NDArray[np.int64]) -> None:
        self.node_ids = node_ids
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, e: Any) -> Any:
        return self.node_ids[self.index[e]]


class _Strings:
    """The string pool of the routing data: string ``i`` is ``data[offsets[i]:offsets[i+1]]``."""

    def __init__(self, data: NDArray[np.uint8], offsets: NDArray[np.int64]) -> None:
        self.data = data
        self.offsets = offsets

    def __getitem__(self, i: int) -> str:
        return bytes(self.data[self.offsets[i] : self.offsets[i + 1]]).decode()


class _Edges(Sequence[dict[str, Any]]):
    """Each edge's attributes as the graph had them (``engine.edges[e]["name"]``), made on
    demand from the arrays."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __len__(self) -> int:
        return self.engine.edge_count

    def __getitem__(self, e: int) -> dict[str, Any]:  # type: ignore[override]
        engine = self.engine
        data: dict[str, Any] = {key: column[e].item() for key, column in engine.columns.items()}
        for key, column in engine.text_columns.items():
            data[key] = engine.strings[int(column[e])]
        start, end = int(engine.offsets[e]), int(engine.offsets[e + 1])
        data["geometry"] = tuple(map(tuple, engine.points[start:end].tolist()))
        data["nodes"] = tuple(engine.point_nodes[start:end].tolist())
        return data


class _Junctions(Mapping[int, "Junction"]):
    """The junction at each OSM node, made on first use (a bounded cache keeps the recent)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cached = lru_cache(maxsize=65536)(self._make)

    def __getitem__(self, node: int) -> Junction:
        return self._cached(int(node))

    def __iter__(self) -> Iterator[int]:
        return iter(self.engine.leaving)

    def __len__(self) -> int:
        return len(self.engine.leaving)

    def _make(self, node: int) -> Junction:
        engine = self.engine
        first, last = engine._first_bearing, engine._last_bearing
        found = [(float(first[k]), k, k) for k in engine.leaving[node]]
        found += [
            ((float(last[k]) + 180.0) % 360.0, -1, k)
            for k in engine.arriving[node]
            if engine._reverse[k] < 0
        ]
        found.sort()
        i = engine.leaving.index(node)
        # np.round, like the geometries, so a location equals its point in the route line.
        lon, lat = np.round([engine.node_lon[i], engine.node_lat[i]], 6).tolist()
        return Junction(
            tuple(angle for angle, _, _ in found),
            tuple(round(angle) % 360 for angle, _, _ in found),
            tuple(out for _, out, _ in found),
            tuple(road for _, _, road in found),
            (float(lon), float(lat)),
        )


class _RoadIndex(Sequence[int]):
    """Per edge, its road's index in the junction at its tail (``leaving``) or head."""

    def __init__(self, engine: Engine, at: _Junctions, leaving: bool) -> None:
        self.engine = engine
        self.at = at
        self.leaving = leaving

    def __len__(self) -> int:
        return self.engine.edge_count

    def __getitem__(self, e: int) -> int:  # type: ignore[override]
        engine = self.engine
        if self.leaving:
            return self.at[int(engine.tail[e])].out.index(e)
        junction = self.at[int(engine.head[e])]
        reverse = int(engine._reverse[e])
        if reverse >= 0:
            return junction.out.index(reverse)
        return next(
            i
            for i, (out, road) in enumerate(zip(junction.out, junction.road, strict=True))
            if out < 0 and road == e
        )


def _rows(keys: NDArray[np.int64], count: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The offsets and members of a table of ``range(len(keys))`` grouped by key."""
    order = np.argsort(keys, kind="stable").astype(np.int64)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=count), out=offsets[1:])
    return offsets, order


class _Copies(Mapping[int, list[int]]):
    """Per edge, its turn-graph nodes: itself, then its copies (see ``_compile_turns``)."""

    def __init__(self, count: int, origin: NDArray[np.int64], node: NDArray[np.int64]) -> None:
        self.count = count
        self.origin = origin
        self.node = node

    def __getitem__(self, edge: int) -> list[int]:
        start, end = np.searchsorted(self.origin, [edge, edge + 1])
        return [int(edge), *self.node[start:end].tolist()]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.count))

    def __len__(self) -> int:
        return self.count


#: Edges whose pieces the snapping index makes at a time (see ``Engine._index_pieces``).
PIECE_EDGES = 1 << 16


class Engine:
    """Routes on one profile's routing data: snapping, fastest paths, tables, alternatives.

    Made from the arrays of :func:`routing.arrays.profile_arrays` (the import) or of
    :func:`routing.build.graph_arrays` (the networkx model). What derives from them (the
    turn graph, its CCH (:mod:`routing.cch`), the snapping index, the components) is computed
    when missing and kept in :attr:`arrays`: the import stores them all, and a server opens
    them ready-made, memory-mapped, building nothing. A networkx graph (tests, benchmarks) is
    converted first and kept as :attr:`graph`. Given ``topology``, an engine of another data
    version whose turn graph and order are byte for byte these, the CCH's contraction is
    shared (only the metric is customised, at build time: a change of weights only).
    """

    def __init__(
        self,
        data: Arrays | nx.MultiDiGraph,
        small_component_size: int = SMALL_COMPONENT_SIZE,
        *,
        search: bool = True,
        topology: Engine | None = None,
    ) -> None:
        self.graph: nx.MultiDiGraph | None = None
        if isinstance(data, nx.MultiDiGraph):
            self.graph = data
            data = graph_arrays(data)
        #: Every array of the routing data, the derived ones included.
        self.arrays: Arrays = dict(data)
        a = self.arrays
        meta = json.loads(a["meta"].tobytes())
        self.profile: str = meta["profile"]
        self.data_version: str = meta["data_version"]
        self.small_component_size = small_component_size
        self.node_ids: NDArray[np.int64] = a["node_ids"]
        self.node_lon: NDArray[np.float64] = a["node_lon"]
        self.node_lat: NDArray[np.float64] = a["node_lat"]
        #: Per edge, the index of its tail and head in ``node_ids``.
        self.edge_tail: NDArray[np.int64] = a["edge_tail"]
        self.edge_head: NDArray[np.int64] = a["edge_head"]
        #: Per edge, the OSM ids of its tail and head nodes.
        self.tail = _NodeIds(self.node_ids, self.edge_tail)
        self.head = _NodeIds(self.node_ids, self.edge_head)
        self.edge_count = len(self.edge_tail)
        self.strings = _Strings(a["strings"], a["string_offsets"])
        #: Per edge attribute, its values: numbers, or string numbers (``text_columns``).
        self.columns = {
            k.removeprefix(NUMBER_PREFIX): v for k, v in a.items() if k.startswith(NUMBER_PREFIX)
        }
        self.text_columns = {
            k.removeprefix(TEXT_PREFIX): v for k, v in a.items() if k.startswith(TEXT_PREFIX)
        }
        self.edges = _Edges(self)
        self.weight: NDArray[np.int64] = self.columns["weight"]
        self.edge_length: NDArray[np.float64] = self.columns["length"]
        self.edge_time: NDArray[np.float64] = self.columns["travel_time"]
        self._reverse: NDArray[np.int64] = self.columns["reverse"]
        #: Every edge's geometry in one array: edge ``e`` is ``points[offsets[e]:offsets[e+1]]``,
        #: the OSM nodes of those points ``point_nodes[offsets[e]:offsets[e+1]]``.
        self.offsets: NDArray[np.int64] = a["geometry_offsets"]
        self.points: NDArray[np.float64] = a["geometry"]
        self.point_nodes: NDArray[np.int64] = a["geometry_nodes"]
        #: Metres from the start of its edge to each point of ``points``.
        self.along: NDArray[np.float64] = self._derived("along", self._along)
        nodes = len(self.node_ids)
        if "out_edges" not in a:
            a["out_offsets"], a["out_edges"] = _rows(self.edge_tail, nodes)
            a["in_offsets"], a["in_edges"] = _rows(self.edge_head, nodes)
        #: The edges leaving and arriving at each node (by OSM id).
        self.leaving = _ByNode(self.node_ids, _Csr(a["out_offsets"], a["out_edges"]))
        self.arriving = _ByNode(self.node_ids, _Csr(a["in_offsets"], a["in_edges"]))
        self._turn_geometry()
        if "turn_origin" not in a:
            self._compile_turns()
        elif "turn_cost" not in a:
            self._turn_metric()
        self._load_turns()
        if "piece_edge" not in a:
            self._index_pieces()
        self._load_snapping()
        #: Where the CCH's contraction comes from: ``mapped`` (the arrays given: stored with
        #: the data), ``shared`` (``topology``'s) or ``built`` (made here: a networkx model, a
        #: new build, or data stored before the CCH was).
        self.cch_state = "mapped"
        self._cch: cch.Cch | None = None
        self._complete_cch(topology)
        if search:
            self._open_cch()
            self._warm_up()

    @property
    def cch_reused(self) -> bool:
        """Whether the CCH's contraction is ``topology``'s."""
        return self.cch_state == "shared"

    def release_pages(self) -> None:
        """Drop the pages of the memory-mapped arrays from this process's memory: loading
        reads most of them whole, a query a few pages, faulted in again from the page cache
        (which the system shares between processes and reclaims when short)."""
        for array in self.arrays.values():
            mapped = getattr(array, "_mmap", None)
            if isinstance(mapped, mmap.mmap):
                mapped.madvise(mmap.MADV_DONTNEED)

    def _derived(self, name: str, compute: Callable[[], NDArray[Any]]) -> NDArray[Any]:
        if name not in self.arrays:
            self.arrays[name] = compute()
        return self.arrays[name]

    def _warm_up(self) -> None:
        """Compile (or load from the disk cache) the kernels now rather than on a request."""
        if self.edge_count:
            lon, lat = self.points[0]
            self.snap(float(lon), float(lat), radius=None)
            line = self.line(Route(np.zeros(1, dtype=np.int64), 0.0, 1.0, 0))
            kernels.encode_polyline(kernels.simplify(line, 1e-5), 5)
        if self._cch is not None:
            self._cch.route([(0, 0)], [(0, 0)])
            self._cch.one_to_many([[(0, 0)]], [0])
            # Without the working arrays the warm-up searches made (tens of MB on a large
            # graph): a profile no route asks for holds none.
            self._open_cch()

    def _along(self) -> NDArray[np.float64]:
        return edge_along(self.points, self.offsets)

    # -- turn graph ---------------------------------------------------------------------------

    def _turn_geometry(self) -> None:
        """Per edge what its turns cost depends on: end bearings, roads at its head, mode."""
        first = self.offsets[:-1]
        last = self.offsets[1:] - 1

        def first_bearing() -> NDArray[np.float64]:
            return _bearing_arrays(self.points[first], self.points[first + 1])

        def last_bearing() -> NDArray[np.float64]:
            return _bearing_arrays(self.points[last - 1], self.points[last])

        self._first_bearing = self._derived("first_bearing", first_bearing)
        self._last_bearing = self._derived("last_bearing", last_bearing)
        nodes = len(self.node_ids)
        # The roads at a node as its junction lists them: every edge leaving it and every
        # one-way edge arriving at it.
        roads = np.bincount(self.edge_tail, minlength=nodes) + np.bincount(
            self.edge_head[self._reverse < 0], minlength=nodes
        )
        #: Per node, the roads of its junction (per node rather than per edge: fewer).
        self._node_roads: NDArray[np.int64] = roads
        self._mode = self.text_columns["mode"]
        self._turn_costs = PROFILES[self.profile].turns
        #: Per edge, whether it is open only to reach places on it (``destination`` access).
        self.restricted: NDArray[np.bool_] = self.columns["restricted"]

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
            angle, self._node_roads[self.edge_head[a]], u_turn, self._mode[a] != self._mode[b]
        )
        result: NDArray[np.int64] = np.rint(seconds * 1000.0).astype(np.int64)
        return result

    def _path_turn_ms(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        """Milliseconds of each turn between consecutive ``edges``: looked up among the arcs,
        computed for any pair that is not one."""
        a, b = edges[:-1], edges[1:]
        keys = a * self.edge_count + b
        index = np.minimum(np.searchsorted(self._arc_keys, keys), max(0, len(self._arc_keys) - 1))
        if len(self._arc_keys):
            found = self._arc_keys[index] == keys
            if found.all():
                looked_up: NDArray[np.int64] = self._arc_turn[index]
                return looked_up
        result = self.turn_ms(a, b)
        return result

    def turns(self, path: Route) -> NDArray[np.int64]:
        """Milliseconds of the turn into each edge of ``path`` (0 for the first)."""
        result = np.zeros(len(path.edges), dtype=np.int64)
        if len(path.edges) > 1:
            result[1:] = self._path_turn_ms(path.edges)
        return result

    def _compile_turns(self) -> None:
        """The turn graph (at build time): per edge the edges a route may turn into, with
        restrictions applied, as rows of ``turn_next``; its CCH order."""
        a = self.arrays
        count = self.edge_count
        heads = self.edge_head
        reverse = self._reverse
        out_offsets, out_edges = a["out_offsets"], a["out_edges"]
        # Every edge leaving each edge's head but the way back, in key order.
        degree = np.diff(out_offsets)[heads]
        tails = np.repeat(np.arange(count, dtype=np.int64), degree)
        nexts = out_edges[np.repeat(out_offsets[heads], degree) + within(degree)]
        onward = nexts != reverse[tails]
        tails, nexts = tails[onward], nexts[onward]
        ids = a["barriers"]
        at = np.minimum(np.searchsorted(self.node_ids, ids), max(len(self.node_ids) - 1, 0))
        blocked = np.zeros(len(self.node_ids), dtype=np.bool_)
        if len(self.node_ids):
            blocked[at[self.node_ids[at] == ids]] = True
        # Turning back is allowed only where nothing else is (dead ends, barriers).
        back = blocked[heads] | (np.bincount(tails, minlength=count) == 0)
        keep = ~back[tails]
        turning = np.flatnonzero(back & (reverse >= 0))
        tails = np.concatenate([tails[keep], turning])
        nexts = np.concatenate([nexts[keep], reverse[turning]])
        order = np.argsort(tails, kind="stable")
        tails, nexts = tails[order], nexts[order]
        kinds, froms, tos = a["restriction_kind"], a["restriction_from"], a["restriction_to"]
        plain = np.diff(a["restriction_via_offsets"]) == 0
        keys = tails * count + nexts
        only = plain & (kinds != RESTRICTION_NO)
        allowed = ~np.isin(tails, froms[only]) | np.isin(keys, froms[only] * count + tos[only])
        no = plain & (kinds == RESTRICTION_NO)
        allowed &= ~np.isin(keys, froms[no] * count + tos[no])
        tails, nexts = tails[allowed], nexts[allowed]
        del keys, allowed, order, keep
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.bincount(tails, minlength=count), out=offsets[1:])
        successors = _Csr(offsets, nexts)
        # Turn-graph nodes: one per edge, then copies of via-way edges (state "entered from
        # the restriction's from-edge"); ``origin`` maps each back to its edge. Rows changed
        # by them are kept aside: there are few.
        origin = list(range(count))
        rows: dict[int, list[int]] = {}

        def row(
            node: int, rows: dict[int, list[int]] = rows, successors: _Csr = successors
        ) -> list[int]:
            return rows[node] if node in rows else successors[node]

        vias = _Csr(a["restriction_via_offsets"], a["restriction_via"])
        for i in np.flatnonzero(~plain).tolist():
            kind, a_, via, b = int(kinds[i]), int(froms[i]), vias[i], int(tos[i])
            if via[0] not in row(a_):
                continue
            copies = list(range(len(origin), len(origin) + len(via)))
            origin.extend(via)
            rows[a_] = [copies[0] if x == via[0] else x for x in row(a_)]
            for k, (edge, copy) in enumerate(zip(via, copies, strict=True)):
                if k + 1 < len(via):
                    rest = [x for x in row(edge) if x != via[k + 1]]
                    rows[copy] = [*rest, copies[k + 1]]
                elif kind == RESTRICTION_NO:
                    rows[copy] = [x for x in row(edge) if x != b]
                else:
                    rows[copy] = [x for x in row(edge) if x == b]
        if rows:
            changed = np.asarray(sorted(rows), dtype=np.int64)
            kept = ~np.isin(tails, changed)
            added = [(node, nxt) for node in changed.tolist() for nxt in rows[node]]
            extra = np.asarray(added, dtype=np.int64).reshape(-1, 2)
            tails = np.concatenate([tails[kept], extra[:, 0]])
            nexts = np.concatenate([nexts[kept], extra[:, 1]])
            order = np.argsort(tails, kind="stable")
            tails, nexts = tails[order], nexts[order]
        sizes = np.bincount(tails, minlength=len(origin))
        offsets = np.zeros(len(origin) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        turn_origin = np.asarray(origin, dtype=np.int64)
        copy_order = np.argsort(turn_origin[count:], kind="stable")
        a.update(
            turn_origin=turn_origin,
            turn_offsets=offsets,
            turn_next=nexts,
            copy_origin=turn_origin[count:][copy_order],
            copy_node=(np.arange(count, len(origin), dtype=np.int64))[copy_order],
        )
        # Held only by the arrays from here (a subclass may move them out of memory).
        del turn_origin, offsets, nexts, copy_order, origin, rows, successors, row, sizes
        self._turn_metric()
        a["cch_order"] = self._order(a["turn_origin"], tails, a["turn_next"])

    def _turn_metric(self) -> None:
        """What the turns of the turn graph cost (at build time): the part of the turn graph
        that depends on the roads' geometry and weights, not on how they connect."""
        a = self.arrays
        count = self.edge_count
        turn_origin, offsets, turn_next = a["turn_origin"], a["turn_offsets"], a["turn_next"]
        tails = np.repeat(np.arange(len(turn_origin), dtype=np.int64), np.diff(offsets))
        # An arc costs its tail edge and the turn into its head edge (copies turn like their
        # originals).
        first, second = turn_origin[tails], turn_origin[turn_next]
        turn = self.turn_ms(first, second)
        # What the search minimises: durations, plus the restricted-area penalty.
        turn_weight = turn + self.restricted_ms(first, second)
        # The turn (duration) of every pair of edges an arc joins, sorted by pair, for durations.
        keys = first * count + second
        by_pair = np.argsort(keys, kind="stable")
        a.update(turn_cost=turn_weight, arc_keys=keys[by_pair], arc_turn=turn[by_pair])

    def _order(
        self, origin: NDArray[np.int64], tails: NDArray[np.int64], heads: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """The CCH order of the turn graph (nodes ``origin``, arcs ``tails`` -> ``heads``): any
        order gives the same answers, a good one fast queries (subclasses may reuse one)."""
        if not len(origin):
            return np.zeros(0, dtype=np.int64)
        starts = self.points[self.offsets[origin]]
        return np.asarray(
            rk.compute_order_inertial(
                len(origin),
                tails,  # type: ignore[arg-type]
                heads,  # type: ignore[arg-type]
                np.ascontiguousarray(starts[:, 1]),  # type: ignore[arg-type]
                np.ascontiguousarray(starts[:, 0]),  # type: ignore[arg-type]
            ),
            dtype=np.int64,
        )

    def _load_turns(self) -> None:
        a = self.arrays
        #: Per turn-graph node, its edge.
        self.origin: NDArray[np.int64] = a["turn_origin"]
        self._origin = self.origin
        #: Per turn-graph node, the nodes a route may go on to and the turn cost (ms) of each.
        self.successors = _Csr(a["turn_offsets"], a["turn_next"])
        self.successor_turns = _Csr(a["turn_offsets"], a["turn_cost"])
        self._arc_keys: NDArray[np.int64] = a["arc_keys"]
        self._arc_turn: NDArray[np.int64] = a["arc_turn"]
        self.copies = _Copies(self.edge_count, a["copy_origin"], a["copy_node"])

    #: The arrays the CCH is made of: its order and the turn graph's arcs.
    TOPOLOGY = ("cch_order", "turn_offsets", "turn_next")

    def same_topology(self, arrays: Mapping[str, NDArray[Any]]) -> bool:
        """Whether the CCH of the routing data ``arrays`` is this engine's too: the same order
        and arcs, byte for byte."""
        return all(
            name in arrays
            and self.arrays[name].dtype == arrays[name].dtype
            and np.array_equal(self.arrays[name], arrays[name])
            for name in self.TOPOLOGY
        )

    @property
    def arcs(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """The turn graph's arcs: tails, heads and weights (ms); made on each use, not kept
        (next to the CCH they are the engine's largest arrays)."""
        a = self.arrays
        offsets = a["turn_offsets"]
        tails = np.repeat(np.arange(len(self.origin), dtype=np.int64), np.diff(offsets))
        weights = self.weight[self.origin[tails]] + a["turn_cost"]
        return tails, a["turn_next"], weights

    def _complete_cch(self, topology: Engine | None) -> None:
        """Make what the arrays lack of the CCH: at build time all of it, its contraction
        copied from ``topology`` when the turn graph and order are the same (an update that
        changes only weights customises again); in a server, nothing, unless the data was
        stored before the CCH was."""
        a = self.arrays
        if (
            topology is not None
            and all(name in topology.arrays for name in cch.CONTRACTION)
            and self.same_topology(topology.arrays)
        ):
            a.update({name: topology.arrays[name] for name in cch.CONTRACTION})
            self.cch_state = "shared"
        if all(name in a for name in (*cch.CONTRACTION, *cch.METRIC)):
            return
        if not all(name in a for name in cch.CONTRACTION):
            self.cch_state = "built"
        tails, heads, weights = self.arcs
        plain = weights - self.restricted_ms(self._origin[tails], self._origin[heads])
        cch.complete(a, a["cch_order"], tails, heads, weights, plain)
        del tails, heads, weights, plain
        _release_freed()

    def _open_cch(self) -> None:
        self._cch = cch.Cch(self.arrays) if len(self.origin) else None

    @cached_property
    def _plain_cch(self) -> cch.Cch | None:
        """The CCH customised to durations: the arcs without the restricted-road penalty."""
        if self._cch is None:
            return None
        if cch.PLAIN[0] not in self.arrays:
            return self._cch
        return cch.Cch(self.arrays, plain=True)

    def turn_graph(self) -> nx.DiGraph:
        """The edge-based graph the engine searches, as networkx (the reference in tests)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(self.origin)))
        tails, heads, weights = (array.tolist() for array in self.arcs)
        for tail, head, weight in zip(tails, heads, weights, strict=True):
            graph.add_edge(tail, head, weight=weight)
        return graph

    @cached_property
    def junctions(self) -> Junctions:
        """The roads at every node with their bearings (each made on first use)."""
        at = _Junctions(self)
        return Junctions(
            at,
            _RoadIndex(self, at, leaving=True),
            _RoadIndex(self, at, leaving=False),
            self._first_bearing,
            self._last_bearing,
        )

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

    def _index_pieces(self) -> None:
        """The snapping index (at build time): every straight piece of road (one direction of
        two-way roads), projected, in a grid; the strongly connected components."""
        count = self.edge_count
        keys = np.arange(count, dtype=np.int64)
        keep = ~((self._reverse >= 0) & (self._reverse < keys))
        pieces = np.where(keep, np.diff(self.offsets) - 1, 0)
        ends = np.cumsum(pieces)
        del keep
        total = int(ends[-1]) if count else 0
        self._cos = projection_cos(self.node_lat)
        made = {
            "piece_edge": self._new_array("piece_edge", (total,), np.int64),
            "piece_offset": self._new_array("piece_offset", (total,), np.float64),
            "piece_start": self._new_array("piece_start", (total, 2), np.float64),
            "piece_end": self._new_array("piece_end", (total, 2), np.float64),
            "piece_xy": self._new_array("piece_xy", (total, 4), np.float64),
        }
        # Made a run of edges at a time: the working arrays stay those of one run.
        for lo in range(0, count, PIECE_EDGES):
            hi = min(lo + PIECE_EDGES, count)
            sizes = pieces[lo:hi]
            first_piece = int(ends[lo] - sizes[0])
            piece_edge = np.repeat(keys[lo:hi], sizes)
            first = np.repeat(ends[lo:hi] - sizes, sizes)
            span = slice(first_piece, first_piece + len(piece_edge))
            point = self.offsets[:-1][piece_edge] + (np.arange(span.start, span.stop) - first)
            del first
            start, end, piece_xy = self._piece_points(point)
            del point
            made["piece_edge"][span] = piece_edge
            made["piece_offset"][span] = piece_offsets(piece_edge, start, end)
            made["piece_start"][span] = start
            made["piece_end"][span] = end
            made["piece_xy"][span] = piece_xy
            del piece_edge, start, end, piece_xy
            self._written(*made.values())
        self.arrays.update(made)
        del made
        self._index_grid()
        self._index_components()

    def _new_array(self, name: str, shape: tuple[int, ...], dtype: type[Any]) -> NDArray[Any]:
        """An array to fill, array ``name`` of :attr:`arrays` once filled (a subclass may
        keep it in a file)."""
        return np.empty(shape, dtype=dtype)

    def _written(self, *arrays: NDArray[Any]) -> None:
        """Called when a part of the arrays of :meth:`_new_array` was written."""

    def _piece_points(
        self, point: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """The pieces from each of ``point`` to the next: start, end, and both projected."""
        start, end = self.points[point], self.points[point + 1]
        x0, y0 = self._project(start[:, 0], start[:, 1])
        x1, y1 = self._project(end[:, 0], end[:, 1])
        return start, end, np.stack([x0, y0, x1, y1], axis=1).reshape(-1, 4)

    def _index_grid(self) -> None:
        """The grid of the projected pieces for the common single nearest road: about one
        piece per cell (the cell size rounded, see :func:`projection_cos`)."""
        a = self.arrays
        piece_xy = a["piece_xy"]
        cell = self._grid_cell()
        left, bottom, columns, rows, starts, members = kernels.build_grid(piece_xy, cell)
        a.update(
            grid_frame=np.asarray([left, bottom, columns, rows, cell, self._cos]),
            grid_starts=starts,
            grid_members=members,
        )

    def _grid_cell(self) -> float:
        """The width of the snapping grid's cells: about one piece per cell."""
        piece_xy = self.arrays["piece_xy"]
        area = (
            float(np.ptp(piece_xy[:, 0::2]) * np.ptp(piece_xy[:, 1::2])) if len(piece_xy) else 0.0
        )
        return max(GRID_CELL_MIN, float(math.ceil(math.sqrt(area / max(1, len(piece_xy))))))

    def _index_components(self) -> None:
        """The strongly connected parts of the turn graph (the edge-based graph with turn
        restrictions that routes are searched on, as OSRM computes them): an edge from which
        the rest cannot be reached, or which cannot be reached from it, is alone or in a small
        part. Turn-graph node ``e`` is edge ``e`` itself (copies come after the edges)."""
        a = self.arrays
        if "edge_component" in a:
            return
        nodes = len(a["turn_origin"])
        tails = np.repeat(np.arange(nodes, dtype=np.int64), np.diff(a["turn_offsets"]))
        arcs = csr_matrix(
            (np.ones(len(tails), dtype=np.int8), (tails, a["turn_next"])), shape=(nodes, nodes)
        )
        _, labels = connected_components(arcs, directed=True, connection="strong")
        labels = np.asarray(labels, dtype=np.int64)
        a.update(
            edge_component=labels[: self.edge_count],
            component_size=np.bincount(labels, minlength=1).astype(np.int64),
        )

    def _load_snapping(self) -> None:
        a = self.arrays
        left, bottom, columns, rows, cell, cos = a["grid_frame"].tolist()
        self._cos = cos
        self._cell = cell
        self._grid = (left, bottom, int(columns), int(rows), a["grid_starts"], a["grid_members"])
        #: Per edge, its strongly connected part of the turn graph, and whether that is small.
        self.edge_component: NDArray[np.int64] = a["edge_component"]
        #: Turn-graph nodes (road directions) of each strongly connected part.
        self._component_size: NDArray[np.int64] = a["component_size"]
        size = self._component_size
        # Below the threshold (a small extract) the part holding most roads is the main one.
        largest = int(np.argmax(size))
        main = largest if 2 * size[largest] > len(self.origin) else -1
        self.edge_small: NDArray[np.bool_] = (
            size[self.edge_component] < self.small_component_size
        ) & (self.edge_component != main)
        self._piece_edge: NDArray[np.int64] = a["piece_edge"]
        self._piece_offset: NDArray[np.float64] = a["piece_offset"]
        self._piece_lonlat = (a["piece_start"], a["piece_end"])
        self._piece_xy: NDArray[np.float64] = a["piece_xy"]
        #: Per edge, whether a route may start or end on it (see ``startpoint`` in build.py).
        self.startpoint: NDArray[np.bool_] = self.columns["startpoint"]
        # Pieces a coordinate may snap onto: not where no route may start (a private
        # driveway); "large" ones also on a part of the graph the rest is reachable from.
        self._piece_allowed: NDArray[np.bool_] = self.startpoint[self._piece_edge]
        # A road is large where either direction is (the other may be a trap).
        reverse = self._reverse[self._piece_edge]
        large_piece = ~self.edge_small[self._piece_edge] | (
            (reverse >= 0) & ~self.edge_small[np.maximum(reverse, 0)]
        )
        self._piece_large: NDArray[np.bool_] = self._piece_allowed & large_piece

    @cached_property
    def _sample_points(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Points every few metres along the pieces and the piece of each (made on the first
        search that needs more than the nearest piece)."""
        xy = self._piece_xy
        x0, y0, x1, y1 = xy[:, 0], xy[:, 1], xy[:, 2], xy[:, 3]
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
        return samples, owner

    @cached_property
    def _samples(self) -> _Samples:
        """The samples of the pieces a coordinate may snap onto, in a k-d tree."""
        samples, owner = self._sample_points
        allowed = self._piece_allowed[owner]
        return self._any_samples if allowed.all() else _Samples(samples[allowed], owner[allowed])

    @cached_property
    def _large_samples(self) -> _Samples:
        """The samples of the large pieces a coordinate may snap onto."""
        samples, owner = self._sample_points
        large = self._piece_large[owner]
        return self._samples if large.all() else _Samples(samples[large], owner[large])

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
            allowed = self._piece_large
        elif any_edge:
            allowed = self._piece_any
        else:
            allowed = self._piece_allowed
        if not len(self._piece_edge):
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
        samples = (
            self._large_samples if large_only else self._any_samples if any_edge else self._samples
        )
        if samples.tree is None:
            return []
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
        length = float(self.edge_length[edge])
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
        reverse = int(self._reverse[snap.edge])
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
        reverse = int(self._reverse[snap.edge])
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
                    (arriving, int(self.weight[arriving]))
                    for arriving in self.arriving[self.tail[edge]]
                ]
            for last, cost in ends:
                for node in self.copies[last]:
                    if node not in found or cost < found[node]:
                        found[node] = cost
        return found

    def _direct(self, start: Snap, end: Snap) -> Route | None:
        best: Route | None = None
        ends = dict(self.directions(end))
        for edge, fraction in self.directions(start):
            if edge in ends and ends[edge] >= fraction:
                weight = round(ends[edge] * self.weight[edge]) - round(fraction * self.weight[edge])
                if best is None or weight < best.weight:
                    best = Route(np.asarray([edge]), fraction, ends[edge], weight)
        return best

    def route(self, start: Snap, end: Snap) -> Route | None:
        """The fastest path from ``start`` to ``end``, or None when there is none."""
        best = self._direct(start, end)
        sources = self.sources(start)
        targets = self.targets(end)
        if not sources or not targets or self._cch is None:
            return best
        found = self._cch.route(
            [(node, cost) for node, (cost, _) in sources.items()], list(targets.items())
        )
        if found is None or (best is not None and best.weight <= found[0]):
            return best
        distance, nodes = found
        return self._path(start, end, sources, nodes, distance)

    def _path(
        self,
        start: Snap,
        end: Snap,
        sources: dict[int, tuple[int, int]],
        nodes: list[int],
        weight: int,
    ) -> Route:
        first_edge = sources[nodes[0]][1]
        first_fraction = dict(self.directions(start))[first_edge]
        last_edge = int(self.origin[nodes[-1]])
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
        return Route(edges, first_fraction, last_fraction, weight)

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
        search = self._cch if penalties else self._plain_cch
        pinned: list[int] = []
        #: Per end, its pinned turn-graph nodes (as indices into ``pinned``) and their costs.
        reached: list[list[tuple[int, int]]] = []
        for end in ends:
            found = self.targets(end)
            reached.append([(len(pinned) + k, cost) for k, cost in enumerate(found.values())])
            pinned.extend(found)
        groups = [
            [(n, cost) for n, (cost, _) in self.sources(start, penalties=penalties).items()]
            for start in starts
        ]
        nothing: list[int | None] = [None] * len(pinned)
        distances = (
            search.one_to_many(groups, pinned)
            if search is not None and pinned
            else [nothing] * len(groups)
        )
        rows: list[list[int | None]] = []
        for start, far in zip(starts, distances, strict=True):
            row: list[int | None] = []
            for end, nodes in zip(ends, reached, strict=True):
                costs = [d + cost for k, cost in nodes if (d := far[k]) is not None]
                direct = self._direct(start, end)
                if direct is not None:
                    costs.append(direct.weight)
                row.append(min(costs) if costs else None)
            rows.append(row)
        return rows

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

    def alternatives(self, start: Snap, end: Snap, best: Route, count: int) -> list[Route]:
        """Up to ``count`` reasonable other paths: through a via edge, ≤ 40 % slower, sharing
        at most 60 % of their length with the routes already chosen."""
        if count <= 0:
            return []
        chosen = [best]
        used = {part.edge for part in best.parts}
        travelled = np.concatenate(
            [self.points[self.offsets[e] : self.offsets[e + 1]] for e in best.edges.tolist()]
        )
        low, high = travelled.min(axis=0), travelled.max(axis=0)
        pad = (high - low) * 0.3 + 0.002
        firsts = self.points[self.offsets[:-1]]
        inside = np.all((firsts >= low - pad) & (firsts <= high + pad), axis=1)
        candidates = [key for key in np.flatnonzero(inside).tolist() if key not in used]
        rng = random.Random(start.edge * 7919 + end.edge)
        rng.shuffle(candidates)
        found: list[Route] = []
        for via in candidates[:60]:
            lon, lat = self.points[self.offsets[via]].tolist()
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
            path = Route.from_parts(parts, weight)
            length = self.length(path)
            if any(self._shared(path, other) > 0.6 * length for other in chosen):
                continue
            chosen.append(path)
            found.append(path)
            if len(found) >= count:
                break
        return sorted(found, key=lambda path: path.weight)

    def _shared(self, path: Route, other: Route) -> float:
        edges = {part.edge for part in other.parts}
        edges |= {int(self._reverse[e]) for e in edges}
        return sum(
            float(self.edge_length[part.edge]) * (part.end - part.start)
            for part in path.parts
            if part.edge in edges
        )

    def length(self, path: Route) -> float:
        """Metres travelled along ``path``."""
        return float(self.edge_length[path.edges] @ path.shares)

    def duration(self, path: Route) -> float:
        """Seconds travelled along ``path``, the turns on the way included."""
        seconds = float(self.edge_time[path.edges] @ path.shares)
        if len(path.edges) > 1:
            seconds += float(self._path_turn_ms(path.edges).sum()) / 1000.0
        return seconds

    def summary(self, path: Route) -> str:
        """The two roads (names, else refs) ``path`` travels longest, in the order travelled."""
        # Per edge, the string number of its road's label (name, else ref); 0 for none.
        name, ref = self.text_columns["name"][path.edges], self.text_columns["ref"][path.edges]
        labels = np.where(name > 0, name, ref)
        # Metres per label, unnamed roads in slot 0.
        totals = np.bincount(labels, weights=self.edge_length[path.edges] * path.shares)
        totals[0] = 0.0
        best: list[int] = []
        for _ in range(2):
            label = int(np.argmax(totals))
            if totals[label] <= 0.0:
                break
            best.append(label)
            totals[label] = 0.0
        # In the order travelled: where each is last travelled.
        best.sort(key=lambda label: int(np.flatnonzero(labels == label)[-1]))
        return ", ".join(self.strings[label] for label in best)

    def line(self, path: Route) -> NDArray[np.float64]:
        """The coordinates of ``path``, without repeated consecutive points (at least two)."""
        return kernels.route_line(
            path.edges, path.start, path.end, self.offsets, self.points, self.along
        )


def _release_freed() -> None:
    """Give the memory freed by a CCH build (its working copies) back to the system: the
    allocator keeps it otherwise, about as much as the CCH itself."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


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

"""A profile's routing data patched from its previous build where only roads' geometry changed."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing.arrays import edge_along, within
from routing.build import NUMBER_PREFIX, TEXT_PREFIX, TURN_GRAPH
from routing.engine import Engine, _bearing_arrays, piece_offsets, projection_cos
from routing.store import Arrays

#: The arrays made from how roads connect and how many points each edge has, nothing else:
#: a patched build takes them from the previous one as they are.
TOPOLOGY = (*TURN_GRAPH, "out_offsets", "out_edges", "in_offsets", "in_edges", "arc_keys")
#: What the turn costs of an edge depend on besides its geometry.
_TURN_COLUMNS = (TEXT_PREFIX + "mode", NUMBER_PREFIX + "restricted")


def patchable(made: Arrays, previous: Arrays, connections: tuple[str, ...]) -> bool:
    """Whether the arrays ``made`` of a profile (see :func:`routing.arrays.profile_arrays`)
    connect as those of its ``previous`` build (a whole engine's) did, with as many points
    per edge: only geometry, weights and tags changed."""
    return all(
        name in previous and np.array_equal(made[name], previous[name])
        for name in (*connections, "geometry_offsets", "geometry_nodes")
    ) and all(name in previous for name in (*TOPOLOGY, "piece_edge", "turn_cost"))


class PatchedEngine(Engine):
    """The engine (not searching) of arrays ``data`` that :func:`patchable` finds patchable
    from ``previous``: every derived array equals a fresh build's, but only the parts of the
    edges whose geometry (or turn costs) changed are computed; the rest is copied."""

    def __init__(self, data: Arrays, previous: Arrays, **options: Any) -> None:
        self._previous = previous
        offsets, points = data["geometry_offsets"], data["geometry"]
        moved_points = np.flatnonzero((points != previous["geometry"]).any(axis=1))
        count = len(offsets) - 1
        #: Per edge, whether a point of it moved, and whether its turns may cost otherwise.
        self._moved = np.zeros(count, dtype=np.bool_)
        self._moved[np.searchsorted(offsets, moved_points, side="right") - 1] = True
        self._turning = self._moved.copy()
        for name in _TURN_COLUMNS:
            self._turning |= data[name] != previous[name]
        edges = np.flatnonzero(self._moved)
        patched = dict(data)
        patched.update({name: previous[name] for name in TOPOLOGY})
        sizes = np.diff(offsets)[edges]
        at = np.repeat(offsets[edges], sizes) + within(sizes)
        local = np.zeros(len(edges) + 1, dtype=np.int64)
        np.cumsum(sizes, out=local[1:])
        along = np.array(previous["along"])
        along[at] = edge_along(points[at], local)
        first, last = offsets[:-1][edges], offsets[1:][edges] - 1
        first_bearing = np.array(previous["first_bearing"])
        first_bearing[edges] = _bearing_arrays(points[first], points[first + 1])
        last_bearing = np.array(previous["last_bearing"])
        last_bearing[edges] = _bearing_arrays(points[last - 1], points[last])
        patched.update(along=along, first_bearing=first_bearing, last_bearing=last_bearing)
        super().__init__(patched, **options)

    def _turn_metric(self) -> None:
        a, previous = self.arrays, self._previous
        count = self.edge_count
        origin, offsets = a["turn_origin"], a["turn_offsets"]
        tails = np.repeat(np.arange(len(origin), dtype=np.int64), np.diff(offsets))
        first, second = origin[tails], origin[a["turn_next"]]
        arcs = np.flatnonzero(self._turning[first] | self._turning[second])
        first, second = first[arcs], second[arcs]
        turn_cost = np.array(previous["turn_cost"])
        turn_cost[arcs] = self.turn_ms(first, second) + self.restricted_ms(first, second)
        keys = a["arc_keys"]
        pairs = np.flatnonzero(self._turning[keys // count] | self._turning[keys % count])
        arc_turn = np.array(previous["arc_turn"])
        arc_turn[pairs] = self.turn_ms(keys[pairs] // count, keys[pairs] % count)
        a.update(turn_cost=turn_cost, arc_turn=arc_turn)

    def _index_pieces(self) -> None:
        a, previous = self.arrays, self._previous
        self._cos = projection_cos(self.node_lat)
        if self._cos != float(previous["grid_frame"][5]):
            super()._index_pieces()
            return
        piece_edge = previous["piece_edge"]
        pieces = np.flatnonzero(self._moved[piece_edge])
        owners = piece_edge[pieces]
        point = self.offsets[:-1][owners] + (pieces - np.searchsorted(piece_edge, owners))
        start, end, xy = self._piece_points(point)
        patched: dict[str, NDArray[Any]] = {}
        for name, part in (
            ("piece_start", start),
            ("piece_end", end),
            ("piece_xy", xy),
            ("piece_offset", piece_offsets(owners, start, end)),
        ):
            patched[name] = np.array(previous[name])
            patched[name][pieces] = part
        a.update(piece_edge=piece_edge, **patched)
        self._index_grid()
        self._index_components()

"""Compiles the routing kernels once into numba's disk cache (``make setup`` runs it)."""

from __future__ import annotations

import logging
import time

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from routing.build import NUMBER_PREFIX, TEXT_PREFIX, graph_arrays
from routing.engine import Engine

log = logging.getLogger(__name__)

#: The corners of the square road of the warm-up network (lon, lat).
CORNERS = {1: (9.5, 47.1), 2: (9.501, 47.1), 3: (9.501, 47.101), 4: (9.5, 47.101)}


def square_network() -> nx.MultiDiGraph:
    """A two-way road around a square: the smallest network an engine searches on."""
    graph = nx.MultiDiGraph(profile="car", data_version="warm-up")
    for node, (lon, lat) in CORNERS.items():
        graph.add_node(node, x=lon, y=lat)
    key = 0
    for u, v in ((1, 2), (2, 3), (3, 4), (4, 1)):
        for tail, head, reverse in ((u, v, key + 1), (v, u, key)):
            graph.add_edge(
                tail,
                head,
                key=key,
                weight=10,
                reverse=reverse,
                way_id=key // 2 + 1,
                length=80.0,
                travel_time=8.0,
                roundabout=False,
                name="",
                ref="",
                highway="residential",
                mode="driving",
                junction="",
                destinations="",
                geometry=[CORNERS[tail], CORNERS[head]],
                nodes=[tail, head],
            )
            key += 1
    return graph


def _read_only(array: NDArray[np.generic]) -> NDArray[np.generic]:
    """A copy typed as the memory-mapped files a server opens are (numba compiles a kernel
    apart for read-only arrays)."""
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the kernels an engine runs on the arrays it
    maps, by opening one on a tiny network as it would open stored data: with a cold cache,
    the engine process would otherwise compile them all as it loads its profiles (tens of
    seconds)."""
    began = time.perf_counter()
    try:
        built = Engine(square_network(), search=False)
        Engine({name: _read_only(array) for name, array in built.arrays.items()})
    except Exception:  # a later engine compiles what it needs itself
        log.exception("routing: the kernels could not be compiled in advance")
        return
    log.info("routing: kernels ready in %.1f s", time.perf_counter() - began)


#: The arrays a patch makes again from node locations (see
#: :func:`routing.arrays.moved_coordinate_arrays`): writable copies, the others mapped.
MOVED = (
    "node_lon",
    "node_lat",
    "geometry",
    *(NUMBER_PREFIX + name for name in ("length", "travel_time", "weight")),
)


def patch_arrays(previous: dict[str, NDArray[np.generic]]) -> dict[str, NDArray[np.generic]]:
    """The arrays a patch of the mapped build ``previous`` (read-only arrays) starts from,
    typed as an update's are: those made from node locations writable, with the first point
    of the first edge moved most of the way along it (its piece changes cells) and its weight
    changed; the others (those made from the roads, not derived by the engine) ``previous``'s.
    """
    made = {
        name: array
        for name, array in previous.items()
        if name in graph_arrays(square_network()) or name.startswith((NUMBER_PREFIX, TEXT_PREFIX))
    }
    for name in MOVED:
        made[name] = np.array(previous[name], copy=True)
    made["geometry"][0] += (made["geometry"][1] - made["geometry"][0]) * 0.9
    made[NUMBER_PREFIX + "weight"][0] += 1
    return made


def warm_patches() -> None:
    """Compile (or load from numba's disk cache) the kernels an update's patch of a kept
    build runs (see :mod:`routing.patch`), by patching the build of a tiny network as an
    update patches the mapped build it kept. ``make setup`` runs it once, so that the first
    update after an install does not compile them (seconds each; numba keeps them on disk)."""
    from routing.arrays import run_lengths
    from routing.patch import PatchedEngine

    began = time.perf_counter()
    try:
        built = Engine(square_network(), search=False)
        previous = {name: _read_only(array) for name, array in built.arrays.items()}
        PatchedEngine(patch_arrays(previous), previous, search=False)
        # Lengths of the moved roads' pieces (routing.arrays.moved_coordinate_arrays).
        points = np.asarray(list(CORNERS.values()), dtype=np.float64)
        run_lengths(points[:, 0], points[:, 1], np.zeros(1, np.int64), np.ones(1, np.int64))
    except Exception:  # the patch compiles what it needs itself
        log.exception("routing: the patch kernels could not be compiled in advance")
        return
    log.info("routing: patch kernels ready in %.1f s", time.perf_counter() - began)

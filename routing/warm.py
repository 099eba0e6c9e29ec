"""Compiles the routing kernels once, in the process the engine processes are forked from."""

from __future__ import annotations

import logging
import time

import networkx as nx
import numpy as np
from numpy.typing import NDArray

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
    maps, by opening one on a tiny network as it would open stored data. Engine processes
    forked after this start with them compiled: with a cold cache, each of them would
    otherwise compile them all at once on the same cores (tens of seconds)."""
    began = time.perf_counter()
    try:
        built = Engine(square_network(), search=False)
        Engine({name: _read_only(array) for name, array in built.arrays.items()})
    except Exception:  # a later engine compiles what it needs itself
        log.exception("routing: the kernels could not be compiled in advance")
        return
    log.info("routing: kernels ready in %.1f s", time.perf_counter() - began)

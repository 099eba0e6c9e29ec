"""A CCH node order carried over from the previous routing data of a profile onto a new one."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing.build import NUMBER_PREFIX
from routing.engine import Engine
from routing.store import Arrays

#: The arrays a turn graph's nodes are keyed by, and its order.
KEY_ARRAYS = ["node_ids", "edge_tail", "edge_head", NUMBER_PREFIX + "way_id", "turn_origin"]
ORDER_ARRAY = "cch_order"
_MIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
)


def turn_keys(arrays: Arrays) -> NDArray[np.uint64]:
    """A key per turn-graph node that survives a rebuild: its edge's way and end nodes (OSM
    ids) and how many nodes of the same edge come before it (an edge's copies)."""
    node_ids = np.asarray(arrays["node_ids"], dtype=np.int64)
    origin = np.asarray(arrays["turn_origin"], dtype=np.int64)
    way = np.asarray(arrays[NUMBER_PREFIX + "way_id"], dtype=np.int64)[origin]
    tail = node_ids[np.asarray(arrays["edge_tail"], dtype=np.int64)[origin]]
    head = node_ids[np.asarray(arrays["edge_head"], dtype=np.int64)[origin]]
    with np.errstate(over="ignore"):
        keys = (
            way.astype(np.uint64) * _MIX[0]
            ^ tail.astype(np.uint64) * _MIX[1]
            ^ head.astype(np.uint64) * _MIX[2]
        )
        by_key = np.argsort(keys, kind="stable")
        ordered = keys[by_key]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))
        rank = np.empty(len(keys), dtype=np.uint64)
        rank[by_key] = (np.arange(len(keys)) - starts).astype(np.uint64)
        mixed: NDArray[np.uint64] = keys + rank * _MIX[3]
    return mixed


def mapped_order(
    previous_keys: NDArray[np.uint64], previous_order: NDArray[np.int64], keys: NDArray[np.uint64]
) -> NDArray[np.int64]:
    """An order of the nodes ``keys``: those also in the previous graph as they were ranked
    there, new ones last (contracted at the top). Always a permutation, whatever the keys."""
    count = len(previous_keys)
    rank = np.empty(count, dtype=np.int64)
    rank[np.asarray(previous_order, dtype=np.int64)] = np.arange(count, dtype=np.int64)
    by_key = np.argsort(previous_keys, kind="stable")
    sorted_keys = previous_keys[by_key]
    where = np.minimum(np.searchsorted(sorted_keys, keys), max(count - 1, 0))
    found = sorted_keys[where] == keys if count else np.zeros(len(keys), dtype=np.bool_)
    place = np.where(found, rank[by_key[where]] if count else 0, count + np.arange(len(keys)))
    return np.argsort(place, kind="stable").astype(np.int64)


class ReorderedEngine(Engine):
    """An engine whose CCH order is the previous data's, mapped onto its turn graph."""

    def __init__(self, data: Arrays, previous: Arrays, **options: Any) -> None:
        self._previous = previous
        super().__init__(data, **options)

    def _order(
        self, origin: NDArray[np.int64], tails: NDArray[np.int64], heads: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        current = {**self.arrays, "turn_origin": origin}
        return mapped_order(
            turn_keys(self._previous), self._previous[ORDER_ARRAY], turn_keys(current)
        )

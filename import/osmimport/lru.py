"""A thread-safe least-recently-used cache bounded by the summed cost (bytes) of its values."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(value: object) -> int:
    return 1


class LRUCache(Generic[K, V]):
    """Values by key; past ``max_cost`` the least recently used go first.

    ``cost`` gives what a value weighs (its bytes, usually); the default counts entries. A
    value heavier than the whole bound is not kept.
    """

    def __init__(self, max_cost: int, cost: Callable[[V], int] = _one) -> None:
        self.max_cost = max_cost
        self._cost = cost
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def total_cost(self) -> int:
        """The summed cost of the values held."""
        return self._total

    def get(self, key: K) -> V | None:
        """The value of ``key``, marked as recently used, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> None:
        """Keep ``value``, evicting the least recently used entries beyond the bound."""
        cost = self._cost(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            if cost > self.max_cost:
                return
            self._items[key] = (value, cost)
            self._total += cost
            while self._total > self.max_cost:
                _, (_, evicted) = self._items.popitem(last=False)
                self._total -= evicted

    def rekey(self, new_key: Callable[[K], K | None]) -> int:
        """Keep each entry under ``new_key(key)`` (in the same order), dropping those it maps to
        None; returns the number kept."""
        with self._lock:
            kept: OrderedDict[K, tuple[V, int]] = OrderedDict()
            for key, entry in self._items.items():
                moved = new_key(key)
                if moved is not None:
                    kept[moved] = entry
            self._items = kept
            self._total = sum(cost for _, cost in kept.values())
            return len(kept)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._items.clear()
            self._total = 0

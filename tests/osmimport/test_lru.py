"""The byte-bounded LRU cache."""

from __future__ import annotations

import threading

from osmimport.lru import LRUCache


def test_evicts_least_recently_used_beyond_the_byte_bound() -> None:
    cache: LRUCache[str, bytes] = LRUCache(10, len)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.total_cost == 8
    assert cache.get("a") == b"aaaa"  # "a" is now the most recent
    cache.put("c", b"cccc")
    assert "b" not in cache
    assert cache.get("a") == b"aaaa" and cache.get("c") == b"cccc"
    assert cache.total_cost == 8 and len(cache) == 2


def test_evicts_as_many_as_needed_in_order() -> None:
    cache: LRUCache[int, bytes] = LRUCache(10, len)
    for key in range(5):
        cache.put(key, b"xx")
    cache.put(9, b"x" * 7)
    assert [k for k in range(10) if k in cache] == [4, 9]
    assert cache.total_cost == 9


def test_a_value_over_the_bound_is_not_kept_and_replaces_nothing_stale() -> None:
    cache: LRUCache[str, bytes] = LRUCache(10, len)
    cache.put("a", b"aaaa")
    cache.put("big", b"x" * 11)
    assert "big" not in cache and cache.get("a") == b"aaaa"
    cache.put("a", b"y" * 11)
    assert "a" not in cache and cache.total_cost == 0


def test_replacing_a_key_counts_its_new_cost_only() -> None:
    cache: LRUCache[str, bytes] = LRUCache(10, len)
    cache.put("a", b"aaaa")
    cache.put("a", b"aaaaaa")
    assert cache.total_cost == 6 and len(cache) == 1
    cache.clear()
    assert cache.total_cost == 0 and cache.get("a") is None


def test_counts_entries_without_a_cost_function() -> None:
    cache: LRUCache[int, str] = LRUCache(3)
    for key in range(5):
        cache.put(key, str(key))
    assert [k for k in range(5) if k in cache] == [2, 3, 4]


def test_threads_keep_the_bound() -> None:
    cache: LRUCache[tuple[int, int], bytes] = LRUCache(1000, len)

    def fill(worker: int) -> None:
        for i in range(2000):
            cache.put((worker, i), b"x" * (i % 17))
            cache.get((worker, i // 2))

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [cache.get((w, i)) for w in range(4) for i in range(2000)]
    assert 0 < cache.total_cost <= 1000
    assert cache.total_cost == sum(len(v) for v in held if v is not None)

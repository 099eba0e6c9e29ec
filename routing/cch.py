"""A customizable contraction hierarchy over plain arrays: made at import, searched mapped."""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing.kernels import compiled

# Nodes are numbered by rank (their place in the order) everywhere below; an upward arc
# joins a node to a higher-ranked one and has a weight each way: ``forward`` (up, from its
# tail) and ``backward`` (down, from its head).

#: The arrays of the contraction (the chordal supergraph of the order), which depend only on
#: the turn graph's arcs and the order: ``cch_rank`` (per node its rank), ``cch_up_first``
#: (per rank where its upward arcs start in ``cch_up_head``, the ranks they lead to, sorted),
#: ``cch_parent`` (per rank its parent in the elimination tree, -1 at a root) and
#: ``cch_arc_slot`` (per turn-graph arc twice its upward arc, plus 1 when it goes down;
#: -1 for a loop).
CONTRACTION = ("cch_rank", "cch_up_first", "cch_up_head", "cch_parent", "cch_arc_slot")
#: The arrays of the metric customised on it: per upward arc its weight up and down, and the
#: middle rank of the lower triangle that gave it (-1: a turn-graph arc), to unpack paths.
METRIC = ("cch_forward", "cch_backward", "cch_forward_middle", "cch_backward_middle")
#: The weights up and down of the second metric (durations only, without the restricted-road
#: penalty), stored only when it differs from the first.
PLAIN = ("cch_plain_forward", "cch_plain_backward")
#: Every array of this module, all of them made again with a new order.
ARRAYS = (*CONTRACTION, *METRIC, *PLAIN)

_INF = np.int64(1) << np.int64(62)
#: The weight of no arc in the arrays stored as 32 bits, and in those stored as 64.
_INF32 = np.int64(0xFFFFFFFF)


@compiled
def _contract(
    count: int, tails: NDArray[np.int64], heads: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int32]]:
    """The chordal supergraph of the arcs ``tails`` -> ``heads`` (ranks) by symbolic
    elimination in rank order: a node's upward neighbours are its own and those of its
    children in the elimination tree but itself; its parent is the lowest of them."""
    start = np.zeros(count + 1, dtype=np.int64)
    for k in range(len(tails)):
        if tails[k] != heads[k]:
            start[min(tails[k], heads[k]) + 1] += 1
    for v in range(count):
        start[v + 1] += start[v]
    filled = start[:-1].copy()
    own = np.empty(start[count], dtype=np.int32)
    for k in range(len(tails)):
        a, b = tails[k], heads[k]
        if a != b:
            low = min(a, b)
            own[filled[low]] = max(a, b)
            filled[low] += 1
    first_child = np.full(count, -1, dtype=np.int32)
    sibling = np.full(count, -1, dtype=np.int32)
    parent = np.full(count, -1, dtype=np.int32)
    mark = np.full(count, -1, dtype=np.int64)
    found = np.empty(max(count, 1), dtype=np.int32)
    up_first = np.zeros(count + 1, dtype=np.int64)
    up_head = np.empty(max(16, 2 * len(own)), dtype=np.int32)
    size = 0
    for v in range(count):
        k = 0
        for i in range(start[v], start[v + 1]):
            u = own[i]
            if mark[u] != v:
                mark[u] = v
                found[k] = u
                k += 1
        child = first_child[v]
        while child != -1:
            for i in range(up_first[child], up_first[child + 1]):
                u = up_head[i]
                if u != v and mark[u] != v:
                    mark[u] = v
                    found[k] = u
                    k += 1
            child = sibling[child]
        ranks = np.sort(found[:k])
        if size + k > len(up_head):
            grown = np.empty(max(2 * len(up_head), size + k), dtype=np.int32)
            grown[:size] = up_head[:size]
            up_head = grown
        up_head[size : size + k] = ranks
        size += k
        up_first[v + 1] = size
        if k:
            p = ranks[0]
            parent[v] = p
            sibling[v] = first_child[p]
            first_child[p] = v
    return up_first, up_head[:size].copy(), parent


@compiled
def _find(up_first: NDArray[np.int64], up_head: NDArray[np.int32], low: int, high: int) -> int:
    """The upward arc from rank ``low`` to rank ``high`` (-1 when there is none)."""
    lo, hi = up_first[low], up_first[low + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if up_head[mid] < high:
            lo = mid + 1
        else:
            hi = mid
    if lo < up_first[low + 1] and up_head[lo] == high:
        return int(lo)
    return -1


@compiled
def _slots(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    tails: NDArray[np.int64],
    heads: NDArray[np.int64],
) -> NDArray[np.int64]:
    slots = np.full(len(tails), -1, dtype=np.int64)
    for k in range(len(tails)):
        a, b = tails[k], heads[k]
        if a < b:
            slots[k] = 2 * _find(up_first, up_head, a, b)
        elif a > b:
            slots[k] = 2 * _find(up_first, up_head, b, a) + 1
    return slots


@compiled
def _lower(
    weight: NDArray[Any],
    middle: NDArray[np.int32],
    arc: int,
    cost: np.int64,
    v: int,
    none: int,
    middles: bool,
) -> bool:
    """Lower the weight of ``arc`` to ``cost`` (through rank ``v``) if that is less; False
    when it has none and ``cost`` does not fit below ``none``."""
    current = np.int64(weight[arc])
    if cost < current:
        weight[arc] = cost
        if middles:
            middle[arc] = v
    elif current >= none:
        return False
    return True


@compiled
def _own(
    slots: NDArray[np.int64],
    weights: NDArray[np.int64],
    up: NDArray[Any],
    down: NDArray[Any],
    none: int,
) -> bool:
    """Per upward arc its own weight up and down (into ``up`` and ``down``): the least of
    its parallel turn-graph arcs (of ``slots``), ``none`` for none. False when a weight does
    not fit below ``none``."""
    up[:] = none
    down[:] = none
    for k in range(len(slots)):
        slot = slots[k]
        if slot < 0:
            continue
        if weights[k] >= none:
            return False
        arc = slot >> 1
        if slot & 1:
            down[arc] = min(np.int64(down[arc]), weights[k])
        else:
            up[arc] = min(np.int64(up[arc]), weights[k])
    return True


@compiled
def _customize(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    slots: NDArray[np.int64],
    weights: NDArray[np.int64],
    up: NDArray[Any],
    down: NDArray[Any],
    up_middle: NDArray[np.int32],
    down_middle: NDArray[np.int32],
    none: int,
) -> bool:
    """The weights ``up`` and ``down`` of the upward arcs by basic customization: each arc's
    own (:func:`_own`), then lowered through every lower triangle, in
    rank order; the middle of the triangle that gave each (unless the middles are empty).
    False when a weight does not fit below ``none`` (the arrays' no-arc value)."""
    middles = len(up_middle) > 0
    if middles:
        up_middle[:] = -1
        down_middle[:] = -1
    if not _own(slots, weights, up, down, none):
        return False
    count = len(up_first) - 1
    for v in range(count):
        end = up_first[v + 1]
        for x in range(up_first[v], end):
            u = up_head[x]
            up_x = np.int64(up[x])
            down_x = np.int64(down[x])
            # Arcs of u's upward neighbours, walked along with v's (both sorted).
            j = up_first[u]
            stop = up_first[u + 1]
            for y in range(x + 1, end):
                w = up_head[y]
                while j < stop and up_head[j] < w:
                    j += 1
                if j == stop or up_head[j] != w:
                    continue
                # u -> v -> w and w -> v -> u.
                up_y, down_y = np.int64(up[y]), np.int64(down[y])
                if down_x < none and up_y < none:
                    if not _lower(up, up_middle, j, down_x + up_y, v, none, middles):
                        return False
                if down_y < none and up_x < none:
                    if not _lower(down, down_middle, j, down_y + up_x, v, none, middles):
                        return False
    return True


def _weights(
    arrays: Mapping[str, NDArray[Any]], weights: NDArray[np.int64], middles: bool
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.int32], NDArray[np.int32]]:
    """The customised weights up and down of the arc ``weights`` (as 32 bits when they fit,
    all ones for no arc, else as 64) and, with ``middles``, the middles of their triangles."""
    arcs = len(arrays["cch_up_head"])
    weights = np.asarray(weights, dtype=np.int64)
    middle = [np.empty(arcs if middles else 0, dtype=np.int32) for _ in range(2)]
    for dtype, none in ((np.uint32, _INF32), (np.int64, _INF)):
        up, down = np.empty(arcs, dtype=dtype), np.empty(arcs, dtype=dtype)
        if _customize(
            arrays["cch_up_first"],
            arrays["cch_up_head"],
            arrays["cch_arc_slot"],
            weights,
            up,
            down,
            middle[0],
            middle[1],
            int(none),
        ):
            return up, down, middle[0], middle[1]
    raise ValueError("arc weights beyond 2**62")


@compiled
def _downward(
    up_first: NDArray[np.int64], up_head: NDArray[np.int32]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]]:
    """The upward arcs by head: per rank where its arcs from below start, and per such arc
    its tail (ascending) and its number."""
    count = len(up_first) - 1
    first = np.zeros(count + 1, dtype=np.int64)
    for x in range(len(up_head)):
        first[up_head[x] + 1] += 1
    for v in range(count):
        first[v + 1] += first[v]
    filled = first[:-1].copy()
    tail = np.empty(len(up_head), dtype=np.int32)
    arc = np.empty(len(up_head), dtype=np.int64)
    for v in range(count):
        for x in range(up_first[v], up_first[v + 1]):
            u = up_head[x]
            tail[filled[u]] = v
            arc[filled[u]] = x
            filled[u] += 1
    return first, tail, arc


@compiled
def _affects(
    before: np.int64, after: np.int64, other: np.int64, weight: np.int64, none: int
) -> bool:
    """Whether a triangle whose side ``before`` became ``after`` (its other side ``other``)
    may change the weight ``weight`` of its top arc or the middle that gave it: it did or
    does give the least weight (ties included), or the top has none (where the sum may
    not fit)."""
    inf = np.int64(1) << np.int64(62)
    old = before + other if before < none and other < none else inf
    new = after + other if after < none and other < none else inf
    return bool(old != new and (min(old, new) <= weight or weight >= none))


@compiled
def _recustomize(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    down_first: NDArray[np.int64],
    down_tail: NDArray[np.int32],
    down_arc: NDArray[np.int64],
    own_up: NDArray[np.uint32],
    own_down: NDArray[np.uint32],
    dirty: NDArray[np.bool_],
    up: NDArray[Any],
    down: NDArray[Any],
    up_middle: NDArray[np.int32],
    down_middle: NDArray[np.int32],
    none: int,
) -> bool:
    """Customise again, in place, the ``dirty`` upward arcs of a customised metric (their
    own weights ``own_up`` and ``own_down`` changed) and every arc that changes with them:
    each recomputed as :func:`_customize` computes it (its own weight, lowered through its
    lower triangles in rank order), in rank order of its tail; when one's weights change, so
    may those of the arcs between its head and the tail's other upward neighbours. The lower
    triangles are found from the arcs by head (:func:`_downward`). False when a weight does
    not fit below ``none``."""
    middles = len(up_middle) > 0
    count = len(up_first) - 1
    widest = 1
    for u in range(count):
        widest = max(widest, up_first[u + 1] - up_first[u])
    # Per head rank, the dirty arc to it from the tail at hand (-1: none).
    where = np.full(count, -1, dtype=np.int64)
    arcs = np.empty(widest, dtype=np.int64)
    made_up = np.empty(widest, dtype=np.int64)
    made_down = np.empty(widest, dtype=np.int64)
    up_from = np.empty(widest, dtype=np.int32)
    down_from = np.empty(widest, dtype=np.int32)
    for u in range(count):
        lo, hi = up_first[u], up_first[u + 1]
        k = 0
        for x in range(lo, hi):
            if dirty[x]:
                where[up_head[x]] = k
                arcs[k] = x
                made_up[k] = np.int64(own_up[x])
                made_down[k] = np.int64(own_down[x])
                up_from[k] = -1
                down_from[k] = -1
                k += 1
        if k == 0:
            continue
        # The lower triangles of u's dirty arcs, in rank order of their bottom v (as
        # _customize lowers them at v): v's arcs above u, searched for the dirty arcs' heads
        # when there are few of those.
        for i in range(down_first[u], down_first[u + 1]):
            v = down_tail[i]
            a = down_arc[i]
            down_a, up_a = np.int64(down[a]), np.int64(up[a])
            if down_a >= none and up_a >= none:
                continue
            end = up_first[v + 1]
            few = 8 * k < end - a - 1
            for n in range(k if few else end - a - 1):
                if few:
                    b = _find(up_first, up_head, v, up_head[arcs[n]])
                    if b < 0:
                        continue
                    j = n
                else:
                    b = a + 1 + n
                    j = where[up_head[b]]
                    if j < 0:
                        continue
                # u -> v -> w and w -> v -> u.
                up_b, down_b = np.int64(up[b]), np.int64(down[b])
                if down_a < none and up_b < none:
                    if not _lower(made_up, up_from, j, down_a + up_b, v, none, True):
                        return False
                if down_b < none and up_a < none:
                    if not _lower(made_down, down_from, j, down_b + up_a, v, none, True):
                        return False
        for n in range(k):
            x = arcs[n]
            w = up_head[x]
            where[w] = -1
            new_up, new_down = made_up[n], made_down[n]
            old_up, old_down = np.int64(up[x]), np.int64(down[x])
            if new_up != old_up or new_down != old_down:
                for y in range(up_first[u], up_first[u + 1]):
                    z = up_head[y]
                    if z == w:
                        continue
                    up_y, down_y = np.int64(up[y]), np.int64(down[y])
                    # The triangle at u of the arc between w and z, each way: w -> u -> z
                    # and z -> u -> w.
                    if z > w:
                        d = _find(up_first, up_head, w, z)
                        ups = _affects(old_down, new_down, up_y, np.int64(up[d]), none)
                        downs = _affects(old_up, new_up, down_y, np.int64(down[d]), none)
                    else:
                        d = _find(up_first, up_head, z, w)
                        ups = _affects(old_up, new_up, down_y, np.int64(up[d]), none)
                        downs = _affects(old_down, new_down, up_y, np.int64(down[d]), none)
                    if ups or downs:
                        dirty[d] = True
                up[x] = new_up
                down[x] = new_down
            if middles:
                up_middle[x] = up_from[n]
                down_middle[x] = down_from[n]
    return True


@compiled
def _climb(
    parent: NDArray[np.int32],
    seeds: NDArray[np.int64],
    costs: NDArray[np.int64],
    distance: NDArray[np.int64],
    seen: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """The ranks on the elimination-tree paths from ``seeds`` to their roots, ascending,
    marked in ``seen``; the seeds' ``distance`` set to their least cost."""
    found = [np.int64(0)]
    found.pop()
    for i in range(len(seeds)):
        v = np.int64(seeds[i])
        while v != -1 and not seen[v]:
            seen[v] = True
            found.append(v)
            v = np.int64(parent[v])
    ranks = np.empty(len(found), dtype=np.int64)
    for i in range(len(found)):
        ranks[i] = found[i]
    ranks.sort()
    for i in range(len(seeds)):
        v = seeds[i]
        if costs[i] < distance[v]:
            distance[v] = costs[i]
    return ranks


@compiled
def _relax(
    v: int,
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    weight: NDArray[Any],
    none: int,
    distance: NDArray[np.int64],
    previous: NDArray[np.int64],
) -> None:
    """Relax the upward arcs of rank ``v`` by ``weight`` (``previous``: per rank reached, the
    arc it was reached by)."""
    here = distance[v]
    for x in range(up_first[v], up_first[v + 1]):
        w = np.int64(weight[x])
        if w >= none:
            continue
        u = up_head[x]
        if here + w < distance[u]:
            distance[u] = here + w
            previous[u] = x


@compiled
def _upward(
    ranks: NDArray[np.int64],
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    weight: NDArray[Any],
    none: int,
    distance: NDArray[np.int64],
    previous: NDArray[np.int64],
) -> None:
    """Relax the upward arcs of ``ranks`` (ascending, closed under parents) by ``weight``;
    ``previous``: per rank reached, the arc it was reached by."""
    inf = np.int64(1) << np.int64(62)
    for i in range(len(ranks)):
        if distance[ranks[i]] < inf:
            _relax(ranks[i], up_first, up_head, weight, none, distance, previous)


@compiled
def _tail(up_first: NDArray[np.int64], arc: int) -> int:
    """The rank an upward arc leaves from."""
    lo, hi = 0, len(up_first) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if up_first[mid] <= arc:
            lo = mid
        else:
            hi = mid
    return lo


@compiled
def _unpack(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    up_middle: NDArray[np.int32],
    down_middle: NDArray[np.int32],
    arcs: NDArray[np.int64],
    downs: NDArray[np.bool_],
    start: int,
) -> NDArray[np.int64]:
    """The ranks of the turn-graph path from ``start`` along the upward ``arcs`` (travelled
    down where ``downs``), shortcuts replaced by the arcs they stand for."""
    path = [np.int64(start)]
    stack_arc = [np.int64(0)]
    stack_down = [False]
    stack_tail = [np.int64(0)]
    stack_arc.pop()
    stack_down.pop()
    stack_tail.pop()
    for i in range(len(arcs) - 1, -1, -1):
        stack_arc.append(arcs[i])
        stack_down.append(downs[i])
        stack_tail.append(np.int64(_tail(up_first, arcs[i])))
    while stack_arc:
        x = stack_arc.pop()
        down = stack_down.pop()
        tail = stack_tail.pop()
        head = np.int64(up_head[x])
        middle = np.int64(down_middle[x] if down else up_middle[x])
        if middle < 0:
            path.append(tail if down else head)
            continue
        to_tail = np.int64(_find(up_first, up_head, int(middle), int(tail)))
        to_head = np.int64(_find(up_first, up_head, int(middle), int(head)))
        # Up: tail -> middle (down its arc) -> head (up its arc); down: the reverse. Pushed
        # last travelled first.
        if down:
            stack_arc.append(to_tail)
            stack_down.append(False)
            stack_tail.append(middle)
            stack_arc.append(to_head)
            stack_down.append(True)
            stack_tail.append(middle)
        else:
            stack_arc.append(to_head)
            stack_down.append(False)
            stack_tail.append(middle)
            stack_arc.append(to_tail)
            stack_down.append(True)
            stack_tail.append(middle)
    return np.asarray(path, dtype=np.int64)


@compiled
def _route(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    parent: NDArray[np.int32],
    up: NDArray[Any],
    down: NDArray[Any],
    up_middle: NDArray[np.int32],
    down_middle: NDArray[np.int32],
    none: int,
    sources: NDArray[np.int64],
    source_costs: NDArray[np.int64],
    targets: NDArray[np.int64],
    target_costs: NDArray[np.int64],
    forward: NDArray[np.int64],
    backward: NDArray[np.int64],
    forward_arc: NDArray[np.int64],
    backward_arc: NDArray[np.int64],
    forward_seen: NDArray[np.bool_],
    backward_seen: NDArray[np.bool_],
) -> tuple[int, NDArray[np.int64]]:
    """The least weight from any of ``sources`` to any of ``targets`` (ranks, each with a
    cost), -1 when none; and the path's ranks. The scratch arrays (per rank) are left as
    they were found: unreached, unseen."""
    inf = np.int64(1) << np.int64(62)
    up_ranks = _climb(parent, sources, source_costs, forward, forward_seen)
    down_ranks = _climb(parent, targets, target_costs, backward, backward_seen)
    for v in up_ranks:
        forward_arc[v] = -1
    for v in down_ranks:
        backward_arc[v] = -1
    best = inf
    meet = -1
    # Both searches in one pass up the ranks: a rank's distances are final when reached, and
    # none is relaxed from a rank already as far as the best meeting found.
    i = j = 0
    while i < len(up_ranks) or j < len(down_ranks):
        if j == len(down_ranks) or (i < len(up_ranks) and up_ranks[i] <= down_ranks[j]):
            v = up_ranks[i]
        else:
            v = down_ranks[j]
        ahead = i < len(up_ranks) and up_ranks[i] == v
        behind = j < len(down_ranks) and down_ranks[j] == v
        if ahead:
            i += 1
        if behind:
            j += 1
        if ahead and behind and forward[v] < inf and backward[v] < inf:
            if forward[v] + backward[v] < best:
                best = forward[v] + backward[v]
                meet = v
        if ahead and forward[v] < best:
            _relax(v, up_first, up_head, up, none, forward, forward_arc)
        if behind and backward[v] < best:
            _relax(v, up_first, up_head, down, none, backward, backward_arc)
    path = np.empty(0, dtype=np.int64)
    if meet >= 0:
        ups = []
        v = meet
        while forward_arc[v] >= 0:
            ups.append(forward_arc[v])
            v = _tail(up_first, forward_arc[v])
        start = v
        count = len(ups)
        v = meet
        while backward_arc[v] >= 0:
            count += 1
            v = _tail(up_first, backward_arc[v])
        arcs = np.empty(count, dtype=np.int64)
        downs = np.zeros(count, dtype=np.bool_)
        for i in range(len(ups)):
            arcs[i] = ups[len(ups) - 1 - i]
        k = len(ups)
        v = meet
        while backward_arc[v] >= 0:
            arcs[k] = backward_arc[v]
            downs[k] = True
            k += 1
            v = _tail(up_first, backward_arc[v])
        path = _unpack(up_first, up_head, up_middle, down_middle, arcs, downs, start)
    for v in up_ranks:
        forward[v] = inf
        forward_seen[v] = False
    for v in down_ranks:
        backward[v] = inf
        backward_seen[v] = False
    return (int(best) if meet >= 0 else -1), path


@compiled
def _one_to_many(
    up_first: NDArray[np.int64],
    up_head: NDArray[np.int32],
    parent: NDArray[np.int32],
    up: NDArray[Any],
    down: NDArray[Any],
    none: int,
    source_offsets: NDArray[np.int64],
    sources: NDArray[np.int64],
    source_costs: NDArray[np.int64],
    targets: NDArray[np.int64],
    forward: NDArray[np.int64],
    backward: NDArray[np.int64],
    forward_arc: NDArray[np.int64],
    forward_seen: NDArray[np.bool_],
    backward_seen: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Per group of sources (rows of ``source_offsets``), the least weight to each of
    ``targets`` (ranks), -1 where none: an upward search from the group, then a downward
    sweep over the targets' elimination-tree paths, from the top."""
    inf = np.int64(1) << np.int64(62)
    zero = np.zeros(len(targets), dtype=np.int64)
    below = _climb(parent, targets, zero, backward, backward_seen)
    for v in below:
        backward[v] = inf
    groups = len(source_offsets) - 1
    result = np.full((groups, len(targets)), -1, dtype=np.int64)
    for g in range(groups):
        seeds = sources[source_offsets[g] : source_offsets[g + 1]]
        costs = source_costs[source_offsets[g] : source_offsets[g + 1]]
        ranks = _climb(parent, seeds, costs, forward, forward_seen)
        _upward(ranks, up_first, up_head, up, none, forward, forward_arc)
        for i in range(len(below) - 1, -1, -1):
            v = below[i]
            best = forward[v] if forward_seen[v] else inf
            for x in range(up_first[v], up_first[v + 1]):
                w = np.int64(down[x])
                u = up_head[x]
                if w < none and backward[u] < inf and backward[u] + w < best:
                    best = backward[u] + w
            backward[v] = best
        for t in range(len(targets)):
            d = backward[targets[t]]
            if d < inf:
                result[g, t] = d
        for v in ranks:
            forward[v] = inf
            forward_seen[v] = False
        for v in below:
            backward[v] = inf
    for v in below:
        backward_seen[v] = False
    return result


def contract(
    order: NDArray[np.int64], tails: NDArray[np.int64], heads: NDArray[np.int64]
) -> dict[str, NDArray[Any]]:
    """The :data:`CONTRACTION` arrays of the turn graph's arcs ``tails`` -> ``heads`` under
    ``order`` (the nodes by rank)."""
    count = len(order)
    rank = np.empty(count, dtype=np.int32)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(count, dtype=np.int32)
    a = rank[np.asarray(tails, dtype=np.int64)].astype(np.int64)
    b = rank[np.asarray(heads, dtype=np.int64)].astype(np.int64)
    up_first, up_head, parent = _contract(count, a, b)
    return {
        "cch_rank": rank,
        "cch_up_first": up_first,
        "cch_up_head": up_head,
        "cch_parent": parent,
        "cch_arc_slot": _slots(up_first, up_head, a, b),
    }


def customize(arrays: Mapping[str, NDArray[Any]], weights: NDArray[np.int64]) -> dict[str, Any]:
    """The :data:`METRIC` arrays of the turn graph's arc ``weights`` on the contraction in
    ``arrays``."""
    up, down, up_middle, down_middle = _weights(arrays, weights, middles=True)
    return {
        "cch_forward": up,
        "cch_backward": down,
        "cch_forward_middle": up_middle,
        "cch_backward_middle": down_middle,
    }


def customize_plain(
    arrays: Mapping[str, NDArray[Any]], weights: NDArray[np.int64], plain: NDArray[np.int64]
) -> dict[str, Any]:
    """The :data:`PLAIN` arrays of the arc weights ``plain`` (none when they are
    ``weights``): searched for weights only, without their paths' middles."""
    if np.array_equal(weights, plain):
        return {}
    up, down, _, _ = _weights(arrays, plain, middles=False)
    return {"cch_plain_forward": up, "cch_plain_backward": down}


def complete(
    arrays: MutableMapping[str, NDArray[Any]],
    order: NDArray[np.int64],
    tails: NDArray[np.int64],
    heads: NDArray[np.int64],
    weights: NDArray[np.int64],
    plain: NDArray[np.int64],
) -> None:
    """Add to ``arrays`` what they lack of the CCH (the contraction, then the metrics);
    the metrics are made again with the contraction."""
    if not all(name in arrays for name in CONTRACTION):
        arrays.update(contract(order, tails, heads))
        for name in (*METRIC, *PLAIN):
            arrays.pop(name, None)
    if not all(name in arrays for name in METRIC):
        for name in PLAIN:
            arrays.pop(name, None)
        arrays.update(customize(arrays, weights))
        arrays.update(customize_plain(arrays, weights, plain))


def _reweighted(
    arrays: Mapping[str, NDArray[Any]],
    downward: tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]],
    previous: Sequence[NDArray[Any]],
    weights: NDArray[np.int64],
    changed: NDArray[np.int64],
) -> tuple[NDArray[Any], ...] | None:
    """The customised metric of the arc ``weights`` made from ``previous`` (its weights up
    and down, with or without their middles), that of arc weights differing only at the
    arcs ``changed``; None where only a whole customisation makes the same arrays (weights
    stored as 64 bits before, or that no longer fit in 32)."""
    up = previous[0]
    if up.dtype != np.uint32 or (len(weights) and int(weights.max()) >= _INF32):
        return None
    slots = arrays["cch_arc_slot"]
    own_up, own_down = np.empty(len(up), dtype=np.uint32), np.empty(len(up), dtype=np.uint32)
    _own(slots, weights, own_up, own_down, int(_INF32))
    dirty = np.zeros(len(up), dtype=np.bool_)
    moved = slots[changed]
    dirty[moved[moved >= 0] >> 1] = True
    from routing.store import writable_copy

    made = [writable_copy(array) for array in previous]
    empty = np.empty(0, dtype=np.int32)
    middles = made[2:] if len(made) == 4 else [empty, empty]
    if not _recustomize(
        arrays["cch_up_first"],
        arrays["cch_up_head"],
        *downward,
        own_up,
        own_down,
        dirty,
        made[0],
        made[1],
        middles[0],
        middles[1],
        int(_INF32),
    ):
        return None
    return tuple(made)


#: The last :func:`downward_arcs` made, with the arrays they were made of (held: their ids
#: stay theirs), by the ids of those: a patch keeps a contraction's arrays as they are.
_DOWNWARD: dict[tuple[int, int], tuple[NDArray[Any], NDArray[Any], Any]] = {}
#: How many contractions' :data:`_DOWNWARD` are kept (one per profile).
_DOWNWARD_KEPT = 3
_DOWNWARD_LOCK = threading.Lock()


def downward_arcs(
    up_first: NDArray[np.int64], up_head: NDArray[np.int32]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]]:
    """The upward arcs by head (see :func:`_downward`), made once per contraction arrays
    (those of a mapped build, or in memory): the next recustomisation of the same
    contraction reads them (an update may make them ahead, see routing.build)."""
    key = (id(up_first), id(up_head))
    with _DOWNWARD_LOCK:
        found = _DOWNWARD.get(key)
    if found is not None:
        made: tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64]] = found[2]
        return made
    made = _downward(up_first, up_head)
    with _DOWNWARD_LOCK:
        _DOWNWARD[key] = (up_first, up_head, made)
        while len(_DOWNWARD) > _DOWNWARD_KEPT:
            del _DOWNWARD[next(iter(_DOWNWARD))]
    return made


def recustomize(
    arrays: Mapping[str, NDArray[Any]],
    previous: Mapping[str, NDArray[Any]],
    weights: NDArray[np.int64],
    plain: NDArray[np.int64],
    changed: NDArray[np.int64],
    changed_plain: NDArray[np.int64],
) -> dict[str, Any]:
    """The :data:`METRIC` and :data:`PLAIN` arrays of the arc ``weights`` and ``plain`` on
    the contraction in ``arrays``, those ``previous`` of the same contraction customised
    again where their arc weights differ (at most at the arcs ``changed``, and
    ``changed_plain`` for the second metric): the arrays :func:`customize` and
    :func:`customize_plain` make, at the cost of the arcs that change only."""
    weights = np.asarray(weights, dtype=np.int64)
    plain = np.asarray(plain, dtype=np.int64)
    downward = downward_arcs(arrays["cch_up_first"], arrays["cch_up_head"])

    def metric() -> dict[str, Any]:
        old = [previous[name] for name in METRIC]
        found = _reweighted(arrays, downward, old, weights, changed)
        return (
            customize(arrays, weights) if found is None else dict(zip(METRIC, found, strict=True))
        )

    def second() -> dict[str, Any]:
        if np.array_equal(weights, plain):
            return {}
        old = [previous[name] for name in (PLAIN if PLAIN[0] in previous else METRIC[:2])]
        found = _reweighted(arrays, downward, old, plain, changed_plain)
        if found is None:
            return customize_plain(arrays, weights, plain)
        return dict(zip(PLAIN, found, strict=True))

    # The kernels release the GIL: both metrics at once.
    with ThreadPoolExecutor(2) as pool:
        plain_made = pool.submit(second)
        made = metric()
        made.update(plain_made.result())
    return made


class _Scratch:
    """Per-rank working arrays of one search at a time, left clean after each."""

    def __init__(self, count: int) -> None:
        self.forward = np.full(count, _INF, dtype=np.int64)
        self.backward = np.full(count, _INF, dtype=np.int64)
        self.forward_arc = np.full(count, -1, dtype=np.int64)
        self.backward_arc = np.full(count, -1, dtype=np.int64)
        self.forward_seen = np.zeros(count, dtype=np.bool_)
        self.backward_seen = np.zeros(count, dtype=np.bool_)


class Cch:
    """Searches on the CCH arrays of a profile (memory-mapped as stored): paths between sets
    of turn-graph nodes and one-to-many weights. Safe across threads: each search takes
    working arrays of its own from a pool (one set per concurrent search, made once)."""

    def __init__(self, arrays: Mapping[str, NDArray[Any]], *, plain: bool = False) -> None:
        self.order: NDArray[np.int64] = arrays["cch_order"]
        self.rank: NDArray[np.int32] = arrays["cch_rank"]
        self.up_first: NDArray[np.int64] = arrays["cch_up_first"]
        self.up_head: NDArray[np.int32] = arrays["cch_up_head"]
        self.parent: NDArray[np.int32] = arrays["cch_parent"]
        prefix = "cch_plain_" if plain and PLAIN[0] in arrays else "cch_"
        self.up: NDArray[Any] = arrays[prefix + "forward"]
        self.down: NDArray[Any] = arrays[prefix + "backward"]
        self.up_middle: NDArray[np.int32] = arrays["cch_forward_middle"]
        self.down_middle: NDArray[np.int32] = arrays["cch_backward_middle"]
        self.none = int(_INF32 if self.up.dtype == np.uint32 else _INF)
        self._pool: list[_Scratch] = []
        self._lock = threading.Lock()

    def _take(self) -> _Scratch:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return _Scratch(len(self.rank))

    def _give(self, scratch: _Scratch) -> None:
        with self._lock:
            self._pool.append(scratch)

    def _ranks(self, nodes: Sequence[int]) -> NDArray[np.int64]:
        return self.rank[np.asarray(nodes, dtype=np.int64)].astype(np.int64)

    def route(
        self, sources: Sequence[tuple[int, int]], targets: Sequence[tuple[int, int]]
    ) -> tuple[int, list[int]] | None:
        """The least weight from any of ``sources`` to any of ``targets`` (turn-graph nodes,
        each with its cost) and the path's turn-graph nodes; None when there is none."""
        scratch = self._take()
        try:
            weight, path = _route(
                self.up_first,
                self.up_head,
                self.parent,
                self.up,
                self.down,
                self.up_middle,
                self.down_middle,
                self.none,
                self._ranks([node for node, _ in sources]),
                np.asarray([cost for _, cost in sources], dtype=np.int64),
                self._ranks([node for node, _ in targets]),
                np.asarray([cost for _, cost in targets], dtype=np.int64),
                scratch.forward,
                scratch.backward,
                scratch.forward_arc,
                scratch.backward_arc,
                scratch.forward_seen,
                scratch.backward_seen,
            )
        finally:
            self._give(scratch)
        if weight < 0:
            return None
        return weight, self.order[path].tolist()

    def one_to_many(
        self, groups: Sequence[Sequence[tuple[int, int]]], targets: Sequence[int]
    ) -> list[list[int | None]]:
        """Per group of sources (turn-graph nodes with their costs), the least weight to
        each of ``targets`` (None where there is none)."""
        offsets = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum([len(group) for group in groups], out=offsets[1:])
        nodes = [node for group in groups for node, _ in group]
        costs = np.asarray([cost for group in groups for _, cost in group], dtype=np.int64)
        scratch = self._take()
        try:
            found = _one_to_many(
                self.up_first,
                self.up_head,
                self.parent,
                self.up,
                self.down,
                self.none,
                offsets,
                self._ranks(nodes),
                costs,
                self._ranks(targets),
                scratch.forward,
                scratch.backward,
                scratch.forward_arc,
                scratch.forward_seen,
                scratch.backward_seen,
            )
        finally:
            self._give(scratch)
        return [[None if d < 0 else d for d in row] for row in found.tolist()]

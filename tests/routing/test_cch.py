"""The CCH of routing.cch: stored with the data, memory-mapped, searched as networkx finds."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

from routing import cch, store
from routing.build import build_profile_graph, graph_arrays
from routing.engine import Engine, Snap
from routing.network import read_network
from routing.profiles import MAX_TURN_SECONDS, PROFILES
from tests.routing.conftest import cut_extract


def _reference(engine: Engine, turns: nx.DiGraph, a: Snap, b: Snap) -> int | None:
    """The weight of the fastest path from ``a`` to ``b`` on the turn graph by Dijkstra."""
    turns.add_nodes_from(["source", "target"])
    for node, (cost, _) in engine.sources(a).items():
        turns.add_edge("source", node, weight=cost)
    for node, cost in engine.targets(b).items():
        turns.add_edge(node, "target", weight=cost)
    try:
        expected: int | None = nx.dijkstra_path_length(turns, "source", "target")
    except nx.NetworkXNoPath:
        expected = None
    turns.remove_nodes_from(["source", "target"])
    direct = engine._direct(a, b)
    if direct is not None and (expected is None or direct.weight < expected):
        expected = direct.weight
    return expected


def assert_searches_as_networkx(engine: Engine, pairs: int, seed: int) -> None:
    """Routes between random points weigh what Dijkstra finds on the turn graph; their
    unpacked turn-graph paths weigh that too, arc by arc; a table equals the routes."""
    turns = engine.turn_graph()
    rng = random.Random(seed)
    search = engine._cch
    assert search is not None
    found = 0
    starts, ends = [], []
    for _ in range(pairs):
        a = Snap(rng.randrange(engine.edge_count), rng.random(), 0, 0, 0)
        b = Snap(rng.randrange(engine.edge_count), rng.random(), 0, 0, 0)
        expected = _reference(engine, turns, a, b)
        assert engine.weight_of(a, b) == expected
        sources = [(node, cost) for node, (cost, _) in engine.sources(a).items()]
        targets = list(engine.targets(b).items())
        path = search.route(sources, targets)
        if path is not None:
            weight, nodes = path
            first = dict(sources)[nodes[0]]
            last = dict(targets)[nodes[-1]]
            arcs = sum(turns[u][v]["weight"] for u, v in zip(nodes, nodes[1:], strict=False))
            assert first + arcs + last == weight
            found += 1
        if len(starts) < 10:
            starts.append(a)
            ends.append(b)
    assert found > pairs // 2
    assert engine.weights(starts, ends) == [[engine.weight_of(a, b) for b in ends] for a in starts]


@pytest.mark.parametrize(("heaviest", "width"), [(1000, np.uint32), (2**31, np.int64)])
def test_random_graph_with_loops_and_parallel_arcs(heaviest: int, width: type) -> None:
    """Several sources and targets with their costs, loops, parallel arcs, parts that do not
    reach each other: the least weights are Dijkstra's (kept as 32 bits while they fit)."""
    rng = np.random.default_rng(3)
    count, arcs = 300, 900
    tails = rng.integers(0, count, arcs)
    heads = rng.integers(0, count, arcs)
    tails[:20], heads[:20] = tails[20:40], heads[20:40]
    heads[40:50] = tails[40:50]
    weights = rng.integers(1, heaviest, arcs)
    order = rng.permutation(count)
    arrays = {"cch_order": order}
    cch.complete(arrays, order, tails, heads, weights, weights)
    assert cch.PLAIN[0] not in arrays
    assert arrays["cch_forward"].dtype == arrays["cch_backward"].dtype == width
    search = cch.Cch(arrays)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(count))
    for a, b, w in zip(tails.tolist(), heads.tolist(), weights.tolist(), strict=True):
        if a != b and (not graph.has_edge(a, b) or graph[a][b]["weight"] > w):
            graph.add_edge(a, b, weight=w)
    for _ in range(100):
        sources = [(int(n), int(c)) for n, c in zip(*rng.integers(0, count, (2, 3)), strict=True)]
        targets = [(int(n), int(c)) for n, c in zip(*rng.integers(0, count, (2, 2)), strict=True)]
        # The least cost of a node given twice.
        graph.add_edges_from(("s", n, {"weight": c}) for n, c in sorted(sources, reverse=True))
        graph.add_edges_from((n, "t", {"weight": c}) for n, c in sorted(targets, reverse=True))
        try:
            expected: int | None = nx.dijkstra_path_length(graph, "s", "t")
        except nx.NetworkXNoPath:
            expected = None
        graph.remove_nodes_from(["s", "t"])
        found = search.route(sources, targets)
        assert (found and found[0]) == expected
        table = search.one_to_many([sources], [n for n, _ in targets])[0]
        ends = [d + c for d, (_, c) in zip(table, targets, strict=True) if d is not None]
        assert min(ends, default=None) == expected


@pytest.mark.parametrize(("profile", "pairs"), [("car", 150), ("bike", 60), ("foot", 60)])
def test_the_stored_cch_is_mapped_and_searches_as_networkx(
    mapped: Path, profile: str, pairs: int
) -> None:
    arrays = store._open(mapped / profile)
    engine = Engine(arrays)
    # Opened as stored, nothing made: every array of the CCH maps the cached files.
    assert engine.cch_state == "mapped"
    for name in (*cch.CONTRACTION, *cch.METRIC):
        assert isinstance(engine.arrays[name], np.memmap), name
        assert engine.arrays[name] is arrays[name], name
    assert_searches_as_networkx(engine, pairs, seed=len(profile))


@pytest.mark.parametrize("bbox", ["9.50,47.10,9.56,47.16", "9.47,47.05,9.60,47.12"])
def test_cut_extract_searches_as_networkx(
    network_db: Callable[[Path | str], str], tmp_path: Path, bbox: str
) -> None:
    """A bbox cut: roads cut at the border, dead ends and one-way traps near it."""
    cut = cut_extract(tmp_path, bbox)
    network = read_network(network_db(cut))
    for name in ("car", "foot"):
        engine = Engine(graph_arrays(build_profile_graph(network, PROFILES[name])))
        assert engine.cch_state == "built"
        assert_searches_as_networkx(engine, 60, seed=7)


_PROCESS = textwrap.dedent(
    """
    import sys
    from routing import store
    from routing.engine import Engine, Snap

    engine = Engine(store._open(__import__("pathlib").Path(sys.argv[1])))
    # Every page of the CCH's weights read, as a long-running server's searches would.
    total = int(engine.arrays["cch_forward"].sum()) + int(engine.arrays["cch_up_head"].sum())
    engine.route(Snap(0, 0.5, 0, 0, 0), Snap(engine.edge_count - 1, 0.5, 0, 0, 0))
    print(total, flush=True)
    sys.stdin.read()
    """
)


def _mapping(pid: int, file: Path) -> dict[str, int]:
    """The kB figures of the mapping of ``file`` in process ``pid`` (from its smaps)."""
    figures: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and not line.endswith(":"):
            inside = line.endswith(str(file))
        elif inside and line.endswith(" kB"):
            key, value, _ = line.split()
            figures[key.rstrip(":")] = figures.get(key.rstrip(":"), 0) + int(value)
    return figures


def test_two_processes_share_one_copy_of_the_cch(mapped: Path) -> None:
    folder = mapped / "foot"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        totals = [process.stdout.readline() for process in processes if process.stdout]
        assert len(set(totals)) == 1 and totals[0].strip(), totals
        for name in ("cch_forward", "cch_up_head"):
            size = (folder / f"{name}.bin").stat().st_size
            for process in processes:
                figures = _mapping(process.pid, folder / f"{name}.bin")
                # Resident in each, but as pages of the shared file: each process accounts
                # for half of them, none is private to it.
                assert figures["Rss"] * 1024 >= size - 4096, (name, figures)
                assert figures["Private_Clean"] + figures["Private_Dirty"] == 0, (name, figures)
                assert figures["Pss"] * 2 <= figures["Rss"] + 4, (name, figures)
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _metric(arrays: dict[str, Any]) -> dict[str, Any]:
    return {name: arrays[name] for name in (*cch.METRIC, *cch.PLAIN) if name in arrays}


def _assert_same(made: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(made) == sorted(expected)
    for name, array in expected.items():
        assert made[name].dtype == array.dtype, name
        assert made[name].tobytes() == array.tobytes(), name


@pytest.mark.parametrize("seed", range(12))
def test_partial_customisation_makes_what_a_whole_one_does(seed: int) -> None:
    """Weights raised, lowered, made equal to parallel arcs', of a few arcs or many, with a
    second metric or without, beyond 32 bits or back: customising again only what changes
    gives the whole customisation's arrays, byte for byte (middles too)."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 400))
    arcs = int(rng.integers(1, 4 * count))
    tails = rng.integers(0, count, arcs)
    heads = rng.integers(0, count, arcs)
    cut = arcs // 10
    tails[:cut], heads[:cut] = tails[cut : 2 * cut], heads[cut : 2 * cut]
    heaviest = 2**33 if seed == 5 else int(rng.choice([3, 50, 10_000]))
    order = rng.permutation(count)
    arrays: dict[str, Any] = {"cch_order": order}
    weights = rng.integers(1, heaviest, arcs)
    plain = weights - rng.integers(0, 2, arcs) * (weights // 2) if seed % 2 else weights
    cch.complete(arrays, order, tails, heads, weights, plain)
    for step in range(6):
        changed = rng.choice(arcs, int(rng.integers(1, arcs + 1)) if step % 3 else 3)
        new = weights.copy()
        new[changed] = rng.integers(1, heaviest if step != 4 else 2**33, len(changed))
        new_plain = plain.copy()
        new_plain[changed] = new[changed] - rng.integers(0, 2, len(changed)) * (new[changed] // 3)
        if seed % 2 == 0:
            new_plain = new
        made = cch.recustomize(
            arrays, _metric(arrays), new, new_plain, np.unique(changed), np.unique(changed)
        )
        expected = {**cch.customize(arrays, new), **cch.customize_plain(arrays, new, new_plain)}
        _assert_same(made, expected)
        for name in (*cch.METRIC, *cch.PLAIN):
            arrays.pop(name, None)
        arrays.update(made)
        weights, plain = new, new_plain


@pytest.mark.parametrize("profile", ["car", "foot"])
def test_partial_customisation_of_a_profile_after_a_change(mapped: Path, profile: str) -> None:
    """The stored metric of a profile, then the roads of 100 edges slower or faster (and
    some made restricted): customising again only what changes makes the whole
    customisation's arrays."""
    engine = Engine(store._open(mapped / profile))
    tails, heads, weights = engine.arcs
    first, second = engine.origin[tails], engine.origin[heads]
    rng = np.random.default_rng(len(profile))
    edges = rng.choice(engine.edge_count, 100, replace=False)
    factor = np.ones(engine.edge_count)
    factor[edges] = rng.choice([0.5, 0.9, 1.5, 4.0], len(edges))
    restricted = np.array(engine.restricted)
    restricted[edges[:10]] = True
    penalty = round(MAX_TURN_SECONDS * 1000) * (restricted[second] & ~restricted[first])
    turn = engine.arrays["turn_cost"] - engine.restricted_ms(first, second) + penalty
    new = np.rint(engine.weight[first] * factor[first]).astype(np.int64) + turn
    plain = new - penalty
    changed = np.flatnonzero(new != weights)
    assert len(changed)
    touched = np.zeros(engine.edge_count, dtype=np.bool_)
    touched[edges] = True
    changed_plain = np.flatnonzero((new != weights) | touched[first] | touched[second])
    made = cch.recustomize(
        engine.arrays, _metric(engine.arrays), new, plain, changed, changed_plain
    )
    expected = {
        **cch.customize(engine.arrays, new),
        **cch.customize_plain(engine.arrays, new, plain),
    }
    assert cch.PLAIN[0] in expected
    _assert_same(made, expected)
    # Made by the partial customisation, not the whole one it falls back to.
    downward = cch._downward(engine.arrays["cch_up_first"], engine.arrays["cch_up_head"])
    old = [engine.arrays[name] for name in cch.METRIC]
    assert cch._reweighted(engine.arrays, downward, old, new, changed) is not None

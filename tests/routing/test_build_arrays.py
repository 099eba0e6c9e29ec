"""The production build (numpy, straight from the tables) against the networkx model."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from osmimport import schema
from routing import cch, store
from routing.arrays import (
    Geometry,
    Roads,
    coordinate_arrays,
    moved_coordinate_arrays,
    moved_only,
    profile_arrays,
    read_roads,
)
from routing.build import CONNECTIONS, RESTRICTION_NO, build_profile_graph, graph_arrays
from routing.engine import Engine, Snap
from routing.network import EARTH_RADIUS, haversine, read_network
from routing.patch import PatchedEngine, patchable
from routing.profiles import PROFILES
from routing.store import CHUNK_BYTES, Arrays, chunk_digests
from tests.routing.conftest import cut_extract, grid_nodes

# A street grid at 7.00x E, 48.00x N, nodes every 0.001 degree, with a bollard and a gate.
NODES = grid_nodes(
    """
    7 8 9 10
    6 5 4 .
    1 2 3 11
    """,
    tags={7: "barrier=bollard", 8: "barrier=gate,access=private", 10: "highway=traffic_signals"},
)
WAYS = """\
w1 v1 Thighway=primary,name=Hauptstrasse,destination=Vaduz,destination:ref=28 Nn1,n2,n3,n11
w2 v1 Thighway=residential,oneway=yes,oneway:bicycle=no Nn3,n4,n9
w3 v1 Thighway=residential,name=Kirchweg Nn2,n5,n4
w4 v1 Thighway=service,access=private Nn1,n6,n5
w5 v1 Thighway=residential,motor_vehicle=destination Nn6,n7,n8,n9,n10
w6 v1 Thighway=footway Nn5,n8
w7 v1 Thighway=residential,junction=roundabout Nn9,n10,n11
w8 v1 Troute=ferry,duration=00:20 Nn10,n12
w9 v1 Thighway=motorway,oneway=-1,maxspeed=100 Nn11,n10
w10 v1 Thighway=track,tracktype=grade2 Nn6
w11 v1 Thighway=residential Nn3,n99,n4
"""
RELATIONS = """\
r1 v1 Ttype=restriction,restriction=no_left_turn Mw1@from,n2@via,w3@to
r2 v1 Ttype=restriction,restriction=only_straight_on Mw3@from,n4@via,w2@to
r3 v1 Ttype=restriction,restriction:bicycle=no_u_turn Mw2@from,n9@via,w2@to
r4 v1 Ttype=restriction,restriction=no_right_turn Mw1@from,w3@via,w2@to
r5 v1 Ttype=restriction,restriction=only_left_turn Mw4@from,w3@via,w2@to
r6 v1 Ttype=restriction,restriction=no_entry,except=motorcar Mw7@from,n10@via,w5@to
r7 v1 Ttype=restriction,restriction=no_left_turn,day_on=Mo Mw5@from,n9@via,w7@to
"""


def assert_same_arrays(url: str) -> dict[str, Engine]:
    """Every array of each profile equals the model's, same names, order and dtypes; the turn
    graph and snapping index equal what the former per-edge loops made."""
    network = read_network(url)
    roads = read_roads(url, schema.SCHEMA, network.data_version, list(PROFILES.values()))
    engines = {}
    for profile in PROFILES.values():
        model = graph_arrays(build_profile_graph(network, profile))
        built = profile_arrays(roads, profile)
        assert list(built) == list(model)
        for name, expected in model.items():
            assert built[name].dtype == expected.dtype, name
            np.testing.assert_array_equal(built[name], expected, err_msg=name)
        engine = Engine(built, search=False)
        assert_reference_turns(engine.arrays)
        assert_reference_offsets(engine.arrays)
        engines[profile.name] = engine
    return engines


def assert_reference_turns(a: Arrays) -> None:
    """The turn graph equals the one of the plain per-edge loop."""
    count = len(a["edge_tail"])
    reverses = a["edge:reverse"].tolist()
    heads = a["edge_head"].tolist()
    out: dict[int, list[int]] = defaultdict(list)
    for key, tail in enumerate(a["edge_tail"].tolist()):
        out[tail].append(key)
    blocked = set(np.flatnonzero(np.isin(a["node_ids"], a["barriers"])).tolist())
    successors = []
    for key in range(count):
        others = [b for b in out[heads[key]] if b != reverses[key]]
        if heads[key] in blocked or not others:
            successors.append([reverses[key]] if reverses[key] >= 0 else [])
        else:
            successors.append(others)
    offsets = a["restriction_via_offsets"]
    forbidden: set[tuple[int, int]] = set()
    only: dict[int, set[int]] = defaultdict(set)
    via_way = []
    for i, (kind, first, last) in enumerate(
        zip(
            a["restriction_kind"].tolist(),
            a["restriction_from"].tolist(),
            a["restriction_to"].tolist(),
            strict=True,
        )
    ):
        via = a["restriction_via"][offsets[i] : offsets[i + 1]].tolist()
        if via:
            via_way.append((kind, first, via, last))
        elif kind == RESTRICTION_NO:
            forbidden.add((first, last))
        else:
            only[first].add(last)
    for first, nexts in enumerate(successors):
        if first in only:
            nexts[:] = [b for b in nexts if b in only[first]]
        nexts[:] = [b for b in nexts if (first, b) not in forbidden]
    origin = list(range(count))
    for kind, first, via, last in via_way:
        if via[0] not in successors[first]:
            continue
        copies = list(range(len(origin), len(origin) + len(via)))
        origin.extend(via)
        successors.extend([] for _ in via)
        successors[first] = [copies[0] if x == via[0] else x for x in successors[first]]
        for i, (edge, copy) in enumerate(zip(via, copies, strict=True)):
            if i + 1 < len(via):
                rest = [x for x in successors[edge] if x != via[i + 1]]
                successors[copy] = [*rest, copies[i + 1]]
            elif kind == RESTRICTION_NO:
                successors[copy] = [x for x in successors[edge] if x != last]
            else:
                successors[copy] = [x for x in successors[edge] if x == last]
    assert a["turn_origin"].tolist() == origin
    turn_offsets = a["turn_offsets"].tolist()
    turn_next = a["turn_next"].tolist()
    rows = [turn_next[turn_offsets[i] : turn_offsets[i + 1]] for i in range(len(origin))]
    assert rows == successors


def assert_reference_offsets(a: Arrays) -> None:
    """Metres along the edge before each snapping piece, summed piece by piece."""
    expected, total, last = [], 0.0, -1
    for edge, start, end in zip(
        a["piece_edge"].tolist(), a["piece_start"].tolist(), a["piece_end"].tolist(), strict=True
    ):
        total = 0.0 if edge != last else total
        expected.append(total)
        total += haversine(*start, *end)
        last = edge
    assert a["piece_offset"].tolist() == expected


def test_small_network_equals_the_model(network_db: Callable[[Path | str], str]) -> None:
    engines = assert_same_arrays(network_db(NODES + WAYS + RELATIONS))
    car = engines["car"].arrays
    # The case is no trivial one: every kind of restriction reaches the car's arrays.
    assert set(car["restriction_kind"].tolist()) == {0, 1}
    assert (np.diff(car["restriction_via_offsets"]) > 0).any()
    assert len(car["turn_origin"]) > len(car["edge_tail"])
    assert car["edge:restricted"].any() and not car["edge:startpoint"].all()
    assert len(car["barriers"]) and len(engines["bike"].arrays["barriers"])


def test_empty_network_equals_the_model(network_db: Callable[[Path | str], str]) -> None:
    assert_same_arrays(network_db(NODES + "w1 v1 Thighway=motorway_junction Nn1,n2\n"))


def test_liechtenstein_equals_the_model(liechtenstein_url: str) -> None:
    engines = assert_same_arrays(liechtenstein_url)
    assert len(engines["car"].arrays["edge_tail"]) > 10000


@pytest.mark.parametrize("bbox", ["9.50,47.10,9.56,47.16"])
def test_cut_extract_equals_the_model(
    network_db: Callable[[Path | str], str], tmp_path: Path, bbox: str
) -> None:
    """A bbox cut keeps ways whose nodes lie partly outside, without their locations."""
    cut = cut_extract(tmp_path, bbox)
    url = network_db(cut)
    network = read_network(url)
    assert any(network.coords(nodes) is None for _, _, nodes in network.ways)
    assert_same_arrays(url)


def _moved(roads: Roads, node: int, lon: float, lat: float) -> Roads:
    """``roads`` with road node ``node`` at (lon, lat)."""
    at = int(np.searchsorted(roads.node_ids, node))
    node_lon, node_lat = roads.node_lon.copy(), roads.node_lat.copy()
    node_lon[at], node_lat[at] = lon, lat
    return replace(roads, node_lon=node_lon, node_lat=node_lat)


def _assert_patched_as_fresh(before: Arrays, roads: Roads, profile: str) -> Arrays:
    """The arrays patched from ``before`` onto ``roads`` are a fresh build's (but the CCH,
    whose order a fresh build makes from the geometry: the patched one keeps the contraction
    of ``before`` and routes as the fresh one); returns them."""
    made = profile_arrays(roads, PROFILES[profile])
    assert patchable(made, before, CONNECTIONS)
    patched_engine = PatchedEngine(made, before, search=False)
    patched = patched_engine.arrays
    fresh = Engine(made, search=False).arrays
    assert sorted(patched) == sorted(fresh)
    for name, array in fresh.items():
        if name not in ("cch_order", *cch.ARRAYS):
            assert patched[name].dtype == array.dtype, name
            np.testing.assert_array_equal(patched[name], array, err_msg=name)
    for name in cch.CONTRACTION:
        assert patched[name] is before[name], name
    assert patched_engine.cch_state == "mapped"
    searching = Engine(patched), Engine(fresh)
    rng = random.Random(5)
    for _ in range(20):
        a, b = (Snap(rng.randrange(len(fresh["edge_tail"])), rng.random(), 0, 0, 0) for _ in "ab")
        assert searching[0].weight_of(a, b) == searching[1].weight_of(a, b)
    return patched


def _assert_moved_made_again(url: str, count: int) -> None:
    """``count`` road nodes (at most all) of the network at ``url`` moved at random: for
    every profile, the arrays made again only around them equal those made whole."""
    roads = read_roads(url, schema.SCHEMA, "1", list(PROFILES.values()))
    rng = np.random.default_rng(7)
    chosen = rng.choice(len(roads.node_ids), min(count, len(roads.node_ids)), replace=False)
    node_lon, node_lat = roads.node_lon.copy(), roads.node_lat.copy()
    node_lon[chosen] += rng.uniform(-1e-4, 1e-4, len(chosen))
    node_lat[chosen] += rng.uniform(-1e-4, 1e-4, len(chosen))
    moved = replace(roads, node_lon=node_lon, node_lat=node_lat)
    for profile in PROFILES.values():
        geometries: list[Geometry] = []
        made = profile_arrays(roads, profile, None, geometries)
        again = moved_coordinate_arrays(roads, moved, geometries[0], made)
        whole = coordinate_arrays(moved, geometries[0])
        assert list(again) == list(whole)
        for key, array in whole.items():
            assert again[key].dtype == array.dtype, (profile.name, key)
            np.testing.assert_array_equal(again[key], array, err_msg=f"{profile.name} {key}")
        assert not np.array_equal(again["geometry"], made["geometry"])


def test_nodes_moved_anywhere_make_the_coordinate_arrays_again(
    network_db: Callable[[Path | str], str], liechtenstein_url: str
) -> None:
    """Road nodes moved at random, in the small network (its ferry's edges share the way's
    duration: moving one node changes them all) and in Liechtenstein."""
    small = network_db(NODES + WAYS + RELATIONS)
    for count in (1, 4, 100):
        _assert_moved_made_again(small, count)
    _assert_moved_made_again(liechtenstein_url, 300)


def _changed_chunks(before: Arrays, after: Arrays) -> dict[str, int]:
    """Per array, how many of its stored chunks differ."""
    counts = {}
    for name, array in after.items():
        old = np.ascontiguousarray(before[name]).reshape(-1).view(np.uint8)
        new = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        counts[name] = sum(
            a != b for a, b in zip(chunk_digests(old), chunk_digests(new), strict=False)
        ) + abs(len(chunk_digests(old)) - len(chunk_digests(new)))
    return counts


def test_moved_roads_patch_the_previous_build(liechtenstein_url: str) -> None:
    """A node moved in the middle of the longest way, a node moved across a grid cell of the
    snapping index, and a way made slower: every patched array equals a fresh build's, and
    only the few stored chunks around the change differ from the previous build's."""
    roads = read_roads(liechtenstein_url, schema.SCHEMA, "1", list(PROFILES.values()))
    befores = {
        name: Engine(profile_arrays(roads, PROFILES[name]), search=False).arrays
        for name in ("car", "foot")
    }
    sizes = np.diff(roads.way_offsets)
    longest = int(np.argmax(np.where(roads.rule_index["car"] >= 0, sizes, 0)))
    middle = int(roads.refs[roads.way_offsets[longest] + sizes[longest] // 2])
    at = int(np.searchsorted(roads.node_ids, middle))
    lon, lat = float(roads.node_lon[at]), float(roads.node_lat[at])
    for name, before in befores.items():
        moved = _moved(roads, middle, lon + 4e-5, lat)
        assert moved_only(roads, moved, name)
        # The arrays made from node locations made again, the others copied: a fresh build's.
        geometries: list[Geometry] = []
        made = profile_arrays(roads, PROFILES[name], None, geometries)
        placed = {**made, **coordinate_arrays(moved, geometries[0])}
        fresh = profile_arrays(moved, PROFILES[name])
        assert list(placed) == list(fresh)
        for key, array in fresh.items():
            assert placed[key].dtype == array.dtype, key
            np.testing.assert_array_equal(placed[key], array, err_msg=key)
        assert not np.array_equal(placed["geometry"], made["geometry"])
        # Made again only where nodes moved, from the arrays before: the same arrays.
        again = moved_coordinate_arrays(roads, moved, geometries[0], made)
        assert list(again) == list(coordinate_arrays(moved, geometries[0]))
        for key, array in again.items():
            assert array.dtype == fresh[key].dtype and array.shape == fresh[key].shape, key
            np.testing.assert_array_equal(array, fresh[key], err_msg=key)
        patched = _assert_patched_as_fresh(before, moved, name)
        changed = _changed_chunks(before, patched)
        assert changed["geometry"] >= 1 and changed["piece_xy"] >= 1
        assert max(changed.values()) <= 3, changed
        assert sum(changed.values()) <= 30, changed

    # Across a column of the grid: the piece's cells change, the grid with them.
    car = befores["car"]
    left, _, _, _, cell, cos = car["grid_frame"].tolist()
    x = np.radians(lon) * EARTH_RADIUS * cos
    border = left + (np.floor((x - left) / cell) + 1) * cell
    crossed = float(np.degrees((border + 2.0) / (EARTH_RADIUS * cos)))
    patched = _assert_patched_as_fresh(car, _moved(roads, middle, crossed, lat), "car")
    assert not np.array_equal(patched["grid_members"], car["grid_members"])
    # The members between the piece's old and new cells shift: a few chunks' worth of bytes.
    assert max(_changed_chunks(car, patched).values()) * CHUNK_BYTES <= 256 * 1024

    # Slower: weights change, no geometry; the derived arrays stay as they were.
    rules, modes = list(roads.rules["car"]), list(roads.rule_modes["car"])
    number = int(roads.rule_index["car"][longest])
    slow = replace(rules[number], speed_forward=7.0, speed_backward=7.0)
    rule_index = roads.rule_index["car"].copy()
    rule_index[longest] = len(rules)
    slower = replace(
        roads,
        rules={**roads.rules, "car": [*rules, slow]},
        rule_modes={**roads.rule_modes, "car": [*modes, modes[number]]},
        rule_index={**roads.rule_index, "car": rule_index},
    )
    assert not moved_only(roads, slower, "car")
    patched = _assert_patched_as_fresh(car, slower, "car")
    assert not np.array_equal(patched["edge:weight"], car["edge:weight"])
    for name in ("along", "piece_xy", "grid_members", "turn_cost", "arc_turn"):
        assert np.array_equal(patched[name], car[name]), name


def test_an_import_build_keeps_its_arrays_in_files(liechtenstein_url: str, tmp_path: Path) -> None:
    """The import's engine makes the same arrays as the engine, byte for byte, the large ones
    mapped from files rather than held in memory."""
    from routing.spill import SpillingEngine

    roads = read_roads(liechtenstein_url, schema.SCHEMA, "v1", list(PROFILES.values()))
    large: set[str] = set()
    for name, profile in PROFILES.items():
        expected = Engine(profile_arrays(roads, profile), search=False).arrays
        spilled = SpillingEngine(profile_arrays(roads, profile), tmp_path / name).arrays
        assert sorted(spilled) == sorted(expected)
        for key, array in expected.items():
            assert spilled[key].dtype == array.dtype, key
            assert spilled[key].shape == array.shape, key
            assert spilled[key].tobytes() == array.tobytes(), key
        mapped = {k for k, v in spilled.items() if isinstance(v, np.memmap)}
        assert mapped == {k for k, v in expected.items() if v.nbytes >= store.SPILL_BYTES}
        large |= mapped
    assert {"geometry", "piece_xy", "cch_forward"} <= large


def test_the_snapping_index_made_in_runs_of_edges_is_the_same(
    liechtenstein_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapping index made a few edges at a time (the import's, into files) is the one made
    at once, byte for byte."""
    import routing.engine
    from routing.spill import SpillingEngine

    roads = read_roads(liechtenstein_url, schema.SCHEMA, "v1", list(PROFILES.values()))
    arrays = profile_arrays(roads, PROFILES["foot"])
    expected = Engine(dict(arrays), search=False).arrays
    assert len(arrays["edge_tail"]) > 1000
    monkeypatch.setattr(routing.engine, "PIECE_EDGES", 7)
    for made in (
        Engine(dict(arrays), search=False).arrays,
        SpillingEngine(dict(arrays), tmp_path).arrays,
    ):
        for key in ("piece_edge", "piece_offset", "piece_start", "piece_end", "piece_xy"):
            assert made[key].dtype == expected[key].dtype, key
            assert made[key].tobytes() == expected[key].tobytes(), key
        assert made["grid_members"].tobytes() == expected["grid_members"].tobytes()

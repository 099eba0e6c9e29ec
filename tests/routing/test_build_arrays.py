"""The production build (numpy, straight from the tables) against the networkx model."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from osmimport import schema
from routing.arrays import profile_arrays, read_roads
from routing.build import RESTRICTION_NO, build_profile_graph, graph_arrays
from routing.engine import Engine
from routing.network import haversine, read_network
from routing.profiles import PROFILES
from routing.store import Arrays
from tests.routing.conftest import LIECHTENSTEIN, grid_nodes

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
    cut = tmp_path / "cut.osm.pbf"
    subprocess.run(
        ["osmium", "extract", "--strategy", "simple", "-b", bbox, "-o", str(cut),
         str(LIECHTENSTEIN)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    url = network_db(cut)
    network = read_network(url)
    assert any(network.coords(nodes) is None for _, _, nodes in network.ways)
    assert_same_arrays(url)

"""Graph rules on small inline networks: oneways, restrictions, barriers, ferries, islands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import networkx as nx

from routing.build import build_graphs, load_graph
from routing.engine import Engine
from tests.routing.conftest import grid_nodes

# A square street block at 7.00-7.00x E, 48.00x N: nodes every 0.001 degree.
NODES = (
    grid_nodes(
        """
        6 5 .
        . . .
        . . 4
        1 2 3
        """
    )
    + "n9 v1 x7.010 y48.010\nn10 v1 x7.011 y48.010\n"
)


def engines(
    network_db: Callable[[Path | str], str], opl: str, nodes: str = NODES
) -> dict[str, Engine]:
    url = network_db(nodes + opl)
    build_graphs(url, quiet=True)
    return {name: Engine(load_graph(url, name)) for name in ("car", "bike", "foot")}


def residential(*chains: str) -> str:
    """OPL ways w1, w2, ... of residential streets, each through the node numbers of a chain."""
    return "".join(
        f"w{way} v1 Thighway=residential N{','.join('n' + node for node in chain.split(','))}\n"
        for way, chain in enumerate(chains, 1)
    )


def ways(engine: Engine, start: tuple[float, float], end: tuple[float, float]) -> list[int] | None:
    a = engine.snap(*start, radius=50)[0]
    b = engine.snap(*end, radius=50)[0]
    path = engine.route(a, b)
    if path is None:
        return None
    found: list[int] = []
    for part in path.parts:
        way = engine.edges[part.edge]["way_id"]
        if not found or found[-1] != way:
            found.append(way)
    return found


def test_oneway_for_cars_open_to_bikes(network_db: Callable[[Path | str], str]) -> None:
    e = engines(
        network_db,
        "w1 v1 Thighway=residential,oneway=yes,oneway:bicycle=no Nn1,n2\n"
        "w2 v1 Thighway=residential Nn2,n5,n6,n1\n",
    )
    west, east = (7.0002, 48.0), (7.0008, 48.0)
    assert ways(e["car"], west, east) == [1]
    # Against the oneway a car goes on, around the block and back.
    assert ways(e["car"], east, west) == [1, 2, 1]
    assert ways(e["bike"], east, west) == [1]
    assert ways(e["foot"], east, west) == [1]


def test_bike_follows_oneway_without_exception(network_db: Callable[[Path | str], str]) -> None:
    e = engines(
        network_db,
        "w1 v1 Thighway=residential,oneway=yes Nn1,n2\nw2 v1 Thighway=residential Nn2,n5,n6,n1\n",
    )
    assert ways(e["bike"], (7.0008, 48.0), (7.0002, 48.0)) == [1, 2, 1]


def test_via_node_restriction(network_db: Callable[[Path | str], str]) -> None:
    opl = residential("1,2", "2,4", "2,5,6,1", "4,3,2")
    restriction = "r1 v1 Ttype=restriction,restriction=no_left_turn Mw1@from,n2@via,w2@to\n"
    start, end = (7.0005, 48.0), (7.0015, 48.0005)
    free = engines(network_db, opl)
    assert ways(free["car"], start, end) == [1, 2]
    restricted = engines(network_db, opl + restriction)
    assert ways(restricted["car"], start, end) == [1, 4, 2]
    assert ways(restricted["bike"], start, end) == [1, 4, 2]
    assert ways(restricted["foot"], start, end) == [1, 2]
    # The same turn from another way stays allowed.
    other = ways(restricted["car"], (7.002, 48.0003), end)
    assert other is not None and other[-1] == 2


def test_only_restriction(network_db: Callable[[Path | str], str]) -> None:
    opl = residential("1,2", "2,4", "2,5,6,1", "4,3,2") + (
        "r1 v1 Ttype=restriction,restriction=only_right_turn Mw1@from,n2@via,w4@to\n"
    )
    e = engines(network_db, opl)
    assert ways(e["car"], (7.0005, 48.0), (7.0015, 48.0005)) == [1, 4, 2]
    # Coming from w3, turning into w2 at n2 is fine.
    assert ways(e["car"], (7.001, 48.0015), (7.0015, 48.0005)) == [3, 2]


def test_via_way_restriction(network_db: Callable[[Path | str], str]) -> None:
    opl = residential("1,2", "2,3", "3,4", "2,5,4")
    restriction = "r1 v1 Ttype=restriction,restriction=no_left_turn Mw1@from,w2@via,w3@to\n"
    start, end = (7.0005, 48.0), (7.002, 48.0008)
    assert ways(engines(network_db, opl)["car"], start, end) == [1, 2, 3]
    e = engines(network_db, opl + restriction)
    assert ways(e["car"], start, end) == [1, 4, 3]
    # Only the whole sequence is forbidden: w1 then w2, or w2 then w3, are fine.
    assert ways(e["car"], start, (7.0018, 48.0)) == [1, 2]
    assert ways(e["car"], (7.0015, 48.0), end) == [2, 3]


def test_barrier_blocks_cars_only(network_db: Callable[[Path | str], str]) -> None:
    opl = "w1 v1 Thighway=residential Nn1,n2,n3\nw2 v1 Thighway=residential Nn1,n6,n5,n4,n3\n"
    nodes = NODES.replace("n2 v1 x", "n2 v1 Tbarrier=bollard x")
    e = engines(network_db, opl, nodes)
    assert ways(e["car"], (7.0005, 48.0), (7.0015, 48.0)) == [1, 2, 1]
    assert ways(e["foot"], (7.0005, 48.0), (7.0015, 48.0)) == [1]


def test_ferry_duration_and_island(network_db: Callable[[Path | str], str]) -> None:
    opl = (
        "w1 v1 Thighway=residential Nn1,n2\n"
        "w2 v1 Troute=ferry,duration=00:30 Nn2,n3\n"
        "w3 v1 Thighway=residential Nn3,n4\n"
        "w9 v1 Thighway=residential Nn9,n10\n"
    )
    e = engines(network_db, opl)
    car = e["car"]
    start = car.snap(7.0005, 48.0, radius=50)[0]
    end = car.snap(7.002, 48.0005, radius=50)[0]
    path = car.route(start, end)
    assert path is not None
    assert [car.edges[p.edge]["way_id"] for p in path.parts] == [1, 2, 3]
    assert 1800 < car.duration(path) < 1900
    assert car.edges[path.parts[1].edge]["mode"] == "ferry"
    island = car.snap(7.0105, 48.010, radius=50)[0]
    assert car.route(start, island) is None
    # networkx agrees there is no path at all.
    graph = load_graph_model(car)
    assert not nx.has_path(graph, 1, 9)


def load_graph_model(engine: Engine) -> nx.MultiDiGraph:
    return engine.graph


def test_graph_attributes(network_db: Callable[[Path | str], str]) -> None:
    url = network_db(
        NODES + "w1 v1 Thighway=primary,name=Rue%20%Haute,ref=D%20%1,maxspeed=70 Nn1,n2\n"
    )
    build_graphs(url, quiet=True)
    graph = load_graph(url, "car")
    (u, v, data), _ = graph.edges(data=True)
    assert {u, v} == {1, 2}
    assert data["way_id"] == 1 and data["name"] == "Rue Haute" and data["ref"] == "D 1"
    assert 70 < data["length"] < 80
    # 70 km/h limit, a car keeps 80 % of it.
    assert abs(data["travel_time"] - data["length"] / (70 * 0.8 / 3.6)) < 1e-6

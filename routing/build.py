"""Build each profile's routing data from the raw road network and store it with its import."""

from __future__ import annotations

import pickle
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from osmimport import schema
from osmimport.database import connect
from routing import store
from routing.network import Network, data_version, haversine, read_network
from routing.profiles import PROFILES, Profile
from routing.store import Arrays

#: Edge attributes of every graph: ``length`` (m), ``travel_time`` (s), ``weight`` (integer
#: milliseconds, what the engine minimises), ``way_id``, ``name``, ``ref``, ``highway``, ``mode``,
#: ``roundabout``, ``junction`` (the ``junction`` tag), ``destinations`` (signposted
#: destinations in OSRM's ``"ref: name"`` form, per direction), ``nodes`` (OSM node ids along
#: the edge), ``geometry`` ([(lon, lat), ...]) and
#: ``reverse`` (key of the edge going back over the same road, or -1). Edge keys are unique
#: integers in a graph. Node attributes: ``x`` (lon), ``y`` (lat). Graph attributes: ``profile``,
#: ``data_version``, ``barriers`` (nodes no route passes through) and ``restrictions``
#: (``(kind, from_key, via_keys, to_key)`` with kind ``"no"``/``"only"``).


@dataclass(frozen=True)
class _Restriction:
    osm_id: int
    kind: str
    from_way: int
    via_nodes: tuple[int, ...]
    via_ways: tuple[int, ...]
    to_way: int


def _restrictions(network: Network, profile: Profile) -> list[_Restriction]:
    found = []
    for osm_id, tags, members in network.restrictions:
        value = profile.restriction(tags)
        if not value or tags.get("day_on") or tags.get("hour_on"):
            continue
        kind = value.split("_", 1)[0]
        if kind not in {"no", "only"}:
            continue
        froms = [m["ref"] for m in members if m.get("role") == "from" and m.get("type") == "w"]
        tos = [m["ref"] for m in members if m.get("role") == "to" and m.get("type") == "w"]
        via_nodes = [m["ref"] for m in members if m.get("role") == "via" and m.get("type") == "n"]
        via_ways = [m["ref"] for m in members if m.get("role") == "via" and m.get("type") == "w"]
        if len(froms) != 1 or len(tos) != 1 or bool(via_nodes) == bool(via_ways):
            continue
        if len(via_nodes) > 1:
            continue
        found.append(
            _Restriction(
                osm_id, kind, int(froms[0]), tuple(via_nodes), tuple(via_ways), int(tos[0])
            )
        )
    return found


def build_profile_graph(network: Network, profile: Profile) -> nx.MultiDiGraph:
    """The directed road graph of one profile, nodes at intersections, edges between them."""
    graph = nx.MultiDiGraph(profile=profile.name, data_version=network.data_version)
    usable = []
    occurrences: Counter[int] = Counter()
    for way_id, tags, nodes in network.ways:
        rule = profile.way(tags)
        if rule is None or len(nodes) < 2 or not (rule.forward or rule.backward):
            continue
        coords = network.coords(nodes)
        if coords is None:
            continue
        usable.append((way_id, tags, nodes, rule, coords))
        occurrences.update(nodes)
        occurrences[nodes[0]] += 1
        occurrences[nodes[-1]] += 1
    blocked = {
        node
        for node, tags in network.barriers.items()
        if node in occurrences and profile.barrier_blocks(tags)
    }
    restrictions = _restrictions(network, profile)
    split = {node for node, count in occurrences.items() if count > 1} | blocked
    split.update(node for r in restrictions for node in r.via_nodes)
    key = 0
    by_way: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for way_id, tags, nodes, rule, coords in usable:
        start = 0
        total = (
            sum(haversine(*coords[i], *coords[i + 1]) for i in range(len(coords) - 1))
            if rule.duration
            else 0.0
        )
        for end in range(1, len(nodes)):
            if nodes[end] not in split and end != len(nodes) - 1:
                continue
            piece_nodes = nodes[start : end + 1]
            piece = coords[start : end + 1]
            length = sum(haversine(*piece[i], *piece[i + 1]) for i in range(len(piece) - 1))
            start = end
            u, v = piece_nodes[0], piece_nodes[-1]
            for node, (lon, lat) in ((u, piece[0]), (v, piece[-1])):
                if node not in graph:
                    graph.add_node(node, x=lon, y=lat)
            base = {
                "way_id": way_id,
                "name": tags.get("name", ""),
                "ref": tags.get("ref", ""),
                "highway": tags.get("highway", tags.get("route", "")),
                "mode": rule.mode,
                "roundabout": tags.get("junction") in {"roundabout", "circular"},
                "junction": tags.get("junction", ""),
                "length": length,
            }
            keys = []
            for forward, allowed, speed in (
                (True, rule.forward, rule.speed_forward),
                (False, rule.backward, rule.speed_backward),
            ):
                if not allowed:
                    continue
                if rule.duration and total > 0:
                    travel_time = rule.duration * length / total
                else:
                    travel_time = length / (speed / 3.6)
                tail, head = (u, v) if forward else (v, u)
                graph.add_edge(
                    tail,
                    head,
                    key=key,
                    **base,
                    travel_time=travel_time,
                    weight=max(1, round(travel_time * 1000)),
                    destinations=_destinations(tags, forward),
                    nodes=tuple(piece_nodes if forward else piece_nodes[::-1]),
                    geometry=tuple(piece if forward else piece[::-1]),
                    reverse=-1,
                )
                by_way[way_id].append((tail, head, key))
                keys.append((tail, head, key))
                key += 1
            if len(keys) == 2:
                graph.edges[keys[0]]["reverse"] = keys[1][2]
                graph.edges[keys[1]]["reverse"] = keys[0][2]
    graph.graph["barriers"] = sorted(blocked)
    graph.graph["restrictions"] = _resolve_restrictions(graph, restrictions, by_way)
    return graph


def _destinations(tags: dict[str, str], forward: bool) -> str:
    """Signposted destinations of a direction as OSRM writes them: ``"A 13: Chur, Buchs"``."""
    suffix = ":forward" if forward else ":backward"

    def pick(key: str) -> str:
        value = tags.get(key + suffix) or tags.get(key, "")
        return ", ".join(part.strip() for part in value.split(";") if part.strip())

    refs, names = pick("destination:ref"), pick("destination")
    if refs and names:
        return f"{refs}: {names}"
    return refs or names


def _resolve_restrictions(
    graph: nx.MultiDiGraph,
    restrictions: list[_Restriction],
    by_way: dict[int, list[tuple[int, int, int]]],
) -> list[tuple[str, int, tuple[int, ...], int]]:
    """Restrictions as edge keys; those whose ways are not in this graph are dropped."""
    resolved: list[tuple[str, int, tuple[int, ...], int]] = []
    for r in restrictions:
        if r.from_way not in by_way or r.to_way not in by_way:
            continue
        if r.via_nodes:
            via = r.via_nodes[0]
            froms = [k for (_, head, k) in by_way[r.from_way] if head == via]
            tos = [k for (tail, _, k) in by_way[r.to_way] if tail == via]
            resolved.extend((r.kind, a, (), b) for a in froms for b in tos)
            continue
        via_edges = [edge for way in r.via_ways for edge in by_way.get(way, [])]
        if not via_edges:
            continue
        via_nodes = {node for tail, head, _ in via_edges for node in (tail, head)}
        adjacency: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for tail, head, k in via_edges:
            adjacency[tail].append((head, k))
        for _, head, a in by_way[r.from_way]:
            if head not in via_nodes:
                continue
            for to_tail, _, b in by_way[r.to_way]:
                if to_tail not in via_nodes or to_tail == head:
                    continue
                chain = _chain(adjacency, head, to_tail)
                if chain:
                    resolved.append((r.kind, a, tuple(chain), b))
    return resolved


def _chain(adjacency: dict[int, list[tuple[int, int]]], start: int, end: int) -> list[int]:
    """Edge keys of the fewest-edges path from ``start`` to ``end`` over the via ways."""
    previous: dict[int, tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == end:
            break
        for head, k in adjacency.get(node, []):
            if head not in previous:
                previous[head] = (node, k)
                queue.append(head)
    if end not in previous:
        return []
    keys = []
    node = end
    while previous[node] is not None:
        tail, k = previous[node]  # type: ignore[misc]
        keys.append(k)
        node = tail
    return keys[::-1]


def graph_arrays(graph: nx.MultiDiGraph) -> Arrays:
    """The stored form of a profile's graph."""
    blob = pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
    return {"graph": np.frombuffer(blob, dtype=np.uint8)}


def graph_from_arrays(arrays: Arrays) -> nx.MultiDiGraph:
    """The graph of :func:`graph_arrays`."""
    graph: nx.MultiDiGraph = pickle.loads(arrays["graph"].tobytes())
    return graph


def load_graph(url: str, profile: str, version: str | None = None) -> nx.MultiDiGraph:
    """The stored graph of ``profile`` for the served data version."""
    version = version or data_version(url)
    return graph_from_arrays(store.load(url, profile, version))


def build_routing(
    url: str,
    schema_name: str,
    version: str,
    *,
    profiles: Sequence[str] | None = None,
    quiet: bool = False,
) -> None:
    """Build and store the routing data of every profile from the road network of
    ``schema_name``, as data version ``version`` (each profile committed on its own)."""
    names = list(profiles or PROFILES)
    if not quiet:
        print(f"routing: building {', '.join(names)} for data version {version}", file=sys.stderr)
    started = time.perf_counter()
    network = read_network(url, schema_name, version)
    read_seconds = time.perf_counter() - started
    conn = connect(url)
    try:
        for name in names:
            began = time.perf_counter()
            graph = build_profile_graph(network, PROFILES[name])
            arrays = graph_arrays(graph)
            seconds = time.perf_counter() - began + read_seconds / len(names)
            with conn, conn.cursor() as cur:
                size = store.save(
                    cur,
                    schema_name,
                    name,
                    version,
                    arrays,
                    build_seconds=seconds,
                    nodes=graph.number_of_nodes(),
                    edges=graph.number_of_edges(),
                )
            if not quiet:
                print(
                    f"routing: {name} graph {graph.number_of_nodes()} nodes, "
                    f"{graph.number_of_edges()} edges, {len(graph.graph['restrictions'])} "
                    f"restrictions, {size / 1e6:.1f} MB, built in {seconds:.1f} s",
                    file=sys.stderr,
                )
            del graph, arrays
    finally:
        conn.close()


def build_before_swap(url: str, staging: str, version: str) -> None:
    """The import's before-swap hook: the routing data of the staged import, in its schema."""
    build_routing(url, staging, version)


def build_graphs(url: str, *, profiles: Sequence[str] | None = None, quiet: bool = False) -> None:
    """Build and store the routing data of the served data again, for its data version."""
    build_routing(url, schema.SCHEMA, data_version(url), profiles=profiles, quiet=quiet)

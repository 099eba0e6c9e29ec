"""Build each profile's routing data from the raw road network and store it with its import."""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import psycopg2.extensions
from psycopg2 import sql

from osmimport import schema
from osmimport.database import connect, table_exists
from osmimport.update import CHANGED_ROADS_TABLE
from routing import store
from routing.cch import CONTRACTION
from routing.errors import GraphNotBuiltError
from routing.network import Network, data_version, haversine, read_network
from routing.profiles import PROFILES, Profile
from routing.store import Arrays

#: Edge attributes of every graph: ``length`` (m), ``travel_time`` (s), ``weight`` (integer
#: milliseconds, what the engine minimises), ``way_id``, ``name``, ``ref``, ``highway``, ``mode``,
#: ``roundabout``, ``junction`` (the ``junction`` tag), ``destinations`` (signposted
#: destinations in OSRM's ``"ref: name"`` form, per direction), ``nodes`` (OSM node ids along
#: the edge), ``geometry`` ([(lon, lat), ...]), ``restricted`` (True where the way is open only
#: to reach places on it, ``destination`` access: entering it from an open road costs a huge
#: turn weight), ``startpoint`` (False where no route may start or end: never snapped onto) and
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


def profile_restrictions(
    relations: Sequence[tuple[int, dict[str, str], list[dict[str, Any]]]], profile: Profile
) -> list[_Restriction]:
    """The turn restrictions of ``relations`` binding ``profile`` that routing can apply."""
    found = []
    for osm_id, tags, members in relations:
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
    restrictions = profile_restrictions(network.restrictions, profile)
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
                "restricted": rule.restricted,
                "startpoint": rule.startpoint,
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
                    destinations=destinations(tags, forward),
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
    graph.graph["restrictions"] = resolve_restrictions(restrictions, by_way)
    return graph


def destinations(tags: dict[str, str], forward: bool) -> str:
    """Signposted destinations of a direction as OSRM writes them: ``"A 13: Chur, Buchs"``."""
    suffix = ":forward" if forward else ":backward"

    def pick(key: str) -> str:
        value = tags.get(key + suffix) or tags.get(key, "")
        return ", ".join(part.strip() for part in value.split(";") if part.strip())

    refs, names = pick("destination:ref"), pick("destination")
    if refs and names:
        return f"{refs}: {names}"
    return refs or names


def resolve_restrictions(
    restrictions: list[_Restriction],
    by_way: dict[int, list[tuple[int, int, int]]],
) -> list[tuple[str, int, tuple[int, ...], int]]:
    """Restrictions as edge keys (``by_way``: the (tail, head, key) of each way's edges, in
    key order); those whose ways have no edges are dropped."""
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


#: Edge attributes kept as numbers (dtype) and as strings, whatever the graph holds; any other
#: attribute a profile adds is kept too, by the type of its values.
NUMBER_COLUMNS = {
    "weight": np.int64,
    "reverse": np.int64,
    "way_id": np.int64,
    "length": np.float64,
    "travel_time": np.float64,
    "roundabout": np.bool_,
    "restricted": np.bool_,
    "startpoint": np.bool_,
}
TEXT_COLUMNS = ("name", "ref", "highway", "mode", "junction", "destinations")
#: Values of attributes an edge may lack.
COLUMN_DEFAULTS: dict[str, Any] = {"restricted": False, "startpoint": True}
#: Array name prefixes of the per-edge attributes.
NUMBER_PREFIX = "edge:"
TEXT_PREFIX = "text:"
#: ``restriction_kind`` values.
RESTRICTION_NO, RESTRICTION_ONLY = 0, 1


def graph_arrays(graph: nx.MultiDiGraph) -> Arrays:
    """The routing data of a profile's graph: nodes, per-edge attributes as columns (strings as
    numbers into one string pool), geometries, barriers and restrictions, as numpy arrays."""
    count = graph.number_of_edges()
    node_ids = np.asarray(sorted(graph.nodes), dtype=np.int64)
    edges: list[dict[str, Any]] = [{}] * count
    tails = np.zeros(count, dtype=np.int64)
    heads = np.zeros(count, dtype=np.int64)
    for u, v, key, data in graph.edges(keys=True, data=True):
        edges[key] = data
        tails[key] = u
        heads[key] = v
    arrays: Arrays = {
        "meta": np.frombuffer(
            json.dumps(
                {"profile": graph.graph["profile"], "data_version": graph.graph["data_version"]}
            ).encode(),
            dtype=np.uint8,
        ),
        "node_ids": node_ids,
        "node_lon": np.asarray([graph.nodes[n]["x"] for n in node_ids.tolist()], np.float64),
        "node_lat": np.asarray([graph.nodes[n]["y"] for n in node_ids.tolist()], np.float64),
        "edge_tail": np.searchsorted(node_ids, tails),
        "edge_head": np.searchsorted(node_ids, heads),
    }
    strings: dict[str, int] = {"": 0}
    extra = sorted({k for data in edges for k in data} - {"geometry", "nodes"})
    for key in sorted({*NUMBER_COLUMNS, *TEXT_COLUMNS, *extra}):
        values = [data.get(key, COLUMN_DEFAULTS.get(key)) for data in edges]
        if key in TEXT_COLUMNS or (
            key not in NUMBER_COLUMNS and values and all(isinstance(v, str) for v in values)
        ):
            arrays[TEXT_PREFIX + key] = np.fromiter(
                (strings.setdefault(v or "", len(strings)) for v in values), np.int32, count
            )
        else:
            dtype = NUMBER_COLUMNS.get(key) or (
                np.bool_
                if all(isinstance(v, bool) for v in values)
                else np.int64
                if all(isinstance(v, int) for v in values)
                else np.float64
            )
            arrays[NUMBER_PREFIX + key] = np.asarray(values, dtype=dtype).reshape(count)
    arrays.update(string_arrays(strings))
    sizes = np.fromiter((len(data["geometry"]) for data in edges), np.int64, count)
    geometry_offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(sizes, out=geometry_offsets[1:])
    arrays["geometry_offsets"] = geometry_offsets
    arrays["geometry"] = np.asarray(
        [point for data in edges for point in data["geometry"]], dtype=np.float64
    ).reshape(-1, 2)
    arrays["geometry_nodes"] = np.asarray(
        [node for data in edges for node in data["nodes"]], dtype=np.int64
    )
    arrays["barriers"] = np.asarray(graph.graph.get("barriers", ()), dtype=np.int64)
    arrays.update(restriction_arrays(graph.graph.get("restrictions", ())))
    return arrays


def string_arrays(strings: Iterable[str]) -> Arrays:
    """The string pool: ``strings`` (UTF-8) end to end, and where each starts."""
    encoded = [text.encode() for text in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(text) for text in encoded], out=offsets[1:])
    return {"strings": np.frombuffer(b"".join(encoded), dtype=np.uint8), "string_offsets": offsets}


def restriction_arrays(restrictions: Sequence[tuple[str, int, tuple[int, ...], int]]) -> Arrays:
    """Resolved restrictions (see :func:`resolve_restrictions`) as arrays: kind, from edge, to
    edge, and the via edges of each (a table of rows)."""
    via_offsets = np.zeros(len(restrictions) + 1, dtype=np.int64)
    np.cumsum([len(r[2]) for r in restrictions], out=via_offsets[1:])
    return {
        "restriction_kind": np.asarray(
            [RESTRICTION_NO if kind == "no" else RESTRICTION_ONLY for kind, *_ in restrictions],
            dtype=np.int8,
        ),
        "restriction_from": np.asarray([r[1] for r in restrictions], dtype=np.int64),
        "restriction_to": np.asarray([r[3] for r in restrictions], dtype=np.int64),
        "restriction_via_offsets": via_offsets,
        "restriction_via": np.asarray([e for r in restrictions for e in r[2]], dtype=np.int64),
    }


def load_graph(url: str, profile: str) -> nx.MultiDiGraph:
    """The graph of ``profile`` made again from the served road network: the model the stored
    routing data is checked against (tests, benchmarks)."""
    return build_profile_graph(read_network(url), PROFILES[profile])


def build_routing(
    url: str,
    schema_name: str,
    version: str,
    *,
    profiles: Sequence[str] | None = None,
    quiet: bool = False,
    keep: Path | None = None,
    cache: Path | None = None,
) -> None:
    """Build and store the routing data of every profile from the road network of
    ``schema_name``, as data version ``version`` (each profile committed on its own); the
    road network read is kept in the folder ``keep`` for the next update to patch. An import
    also puts each profile in the routing file cache ``cache`` (see :func:`store.fill_cache`)."""
    names = list(profiles or PROFILES)
    if not quiet:
        print(f"routing: building {', '.join(names)} for data version {version}", file=sys.stderr)
    started = time.perf_counter()
    # Where an import's build keeps the arrays it makes (see routing.spill).
    scratch: tempfile.TemporaryDirectory[str] | None = None
    conn = connect(url)
    try:
        update = _update_changes(url, conn, schema_name)
        kept = (
            _keep_unchanged(url, conn, schema_name, version, names, update, keep) if update else []
        )
        names = [name for name in names if name not in kept]
        if kept and not quiet:
            print(
                f"routing: {', '.join(kept)} kept (the update changes none of their roads)",
                file=sys.stderr,
            )
        if update is not None and names:
            # What the update's preparation reads ahead is read here on.
            _prepared(url)
        # A profile is saved (by the database, mostly) while the next one is computed; the
        # road network is written for the next update meanwhile too.
        with ThreadPoolExecutor(max_workers=1) as saver:
            found = _roads(url, schema_name, version, update, keep, saver, needed=bool(names))
            if found is None:
                return
            roads, written, previous_roads = found
            if not names:
                if written is not None:
                    written.result()
                return
            read_seconds = time.perf_counter() - started
            _lap(quiet, "read roads", started)
            # Where each road node reference is, for every profile made whole (made once).
            positions: list[Any] = []
            # What exists now outlives the profiles: the collector need not walk it after each.
            gc.freeze()
            saving: Future[None] | None = None
            if update is not None:
                _update_profiles(
                    url, schema_name, version, names, roads, positions, update, keep,
                    previous_roads, saver, conn, quiet, read_seconds,
                )  # fmt: skip
            else:
                place = keep if keep is not None and keep.is_dir() else None
                # Named as the import's work folders: one a killed import leaves is removed
                # by the next.
                from osmimport.importer import WORK_DIR_PREFIX

                scratch = tempfile.TemporaryDirectory(
                    prefix=f"{WORK_DIR_PREFIX}routing-", dir=place
                )
                work = Path(scratch.name)
                for i, name in enumerate(names):
                    if saving is not None:
                        # An import saves a profile before making the next: its peak memory
                        # stays that of one profile.
                        saving.result()
                        gc.collect()
                        saving = None
                        # Saved: its files are no longer read (the mapped ones stay readable).
                        shutil.rmtree(work / names[i - 1])
                    made = _make_profile(
                        url, name, version, roads, positions, None, None, keep, None, quiet,
                        work / name,
                    )  # fmt: skip
                    seconds = time.perf_counter() - made.began + read_seconds / len(names)
                    saving = _submit_save(
                        saver, url, schema_name, version, None, keep, cache, quiet, made, seconds
                    )
                    del made
            if saving is not None:
                saving.result()
            if written is not None:
                written.result()
    finally:
        gc.unfreeze()
        conn.close()
        if scratch is not None:
            scratch.cleanup()


@dataclass
class _Made:
    """A profile's routing data made (see :func:`_make_profile`), for saving and keeping."""

    name: str
    arrays: Arrays
    made_names: list[str]
    geometry: Any
    placed: Any
    reference: Arrays | None
    layout: dict[str, dict[str, Any]] | None
    began: float


#: Held while the road node references' positions are made (once, for every profile).
_POSITIONS_LOCK = threading.Lock()


def _make_profile(
    url: str,
    name: str,
    version: str,
    roads: Any,
    positions: list[Any],
    update: UpdateChanges | None,
    layout: dict[str, dict[str, Any]] | None,
    keep: Path | None,
    previous_roads: Any,
    quiet: bool,
    folder: Path | None,
) -> _Made:
    """The routing data of profile ``name`` made from ``roads`` (an update's: from its
    previous build where it can; ``layout``: the served data's), the engine completing it;
    an import's (with a ``folder``) spilled to files as soon as made (see routing.spill)."""
    began = time.perf_counter()
    if update and keep is not None:
        _restore(url, name, update[1], keep, previous_roads, layout)
    geometries: list[Any] = []
    placed = _PLACED.get((url, name))
    made = _profile_arrays(url, name, roads, positions, update, quiet, geometries)
    made_names = list(made)
    if folder is not None:
        # An import: what it makes goes to files as soon as made, its memory stays that of a
        # step, not of a profile.
        made = store.spill(folder, made)
        geometries[0] = _spill_fields(folder / "geometry", geometries[0])
        positions[0] = _spill_fields(folder.parent / "positions", positions[0])
        store.release(*made.values(), *positions[0])
        # What making them freed: the allocator would keep it otherwise.
        from routing.engine import _release_freed

        _release_freed()
    _lap(quiet, f"{name} arrays", began)
    engine = _engine(url, name, made, update[1] if update else None, layout, quiet, folder)
    arrays = engine.arrays
    # The served data's arrays, when the previous build in memory is theirs: the chunks
    # equal to theirs are found by comparing rather than hashing.
    built = _BUILT.get((url, name))
    reference = built[1] if built and update and built[0] == update[1] else None
    if update:
        _BUILT[(url, name)] = (version, arrays)
    else:
        _BUILT.pop((url, name), None)
    _lap(quiet, f"{name} engine", began)
    return _Made(name, arrays, made_names, geometries[0], placed, reference, layout, began)


def _submit_save(
    saver: Executor,
    url: str,
    schema_name: str,
    version: str,
    update: UpdateChanges | None,
    keep: Path | None,
    cache: Path | None,
    quiet: bool,
    made: _Made,
    seconds: float,
) -> Future[None]:
    """Save ``made`` on ``saver``, then keep it in ``keep`` for the next update and (an
    import) put it in the file ``cache``: the future of all that."""
    name, arrays, layout = made.name, made.arrays, made.layout
    fresh: dict[str, list[int]] = {}
    stored: dict[str, Any] = {}
    saving = saver.submit(
        _save, url, schema_name, name, version, arrays, seconds, layout, made.reference,
        update is not None, quiet, fresh, stored,
    )  # fmt: skip
    if keep is not None:
        # Kept for the next update of another process, once saved.
        before = None
        if update and layout is not None:
            geometry = made.placed[1] if made.placed else None
            before = (update[1], fresh, geometry, store.layout_digest(layout))
        saving = _once_saved(saver, saving, stored, partial(
            _keep_build, keep, name, version, arrays, made.geometry, made.made_names, stored,
            before,
        ))  # fmt: skip
    if cache is not None and update is None:
        saving = _once_saved(
            saver, saving, stored, partial(_fill_cache, cache, name, version, arrays, stored)
        )
    return saving


def _update_profiles(
    url: str,
    schema_name: str,
    version: str,
    names: list[str],
    roads: Any,
    positions: list[Any],
    update: UpdateChanges,
    keep: Path | None,
    previous_roads: Any,
    saver: Executor,
    conn: psycopg2.extensions.connection,
    quiet: bool,
    read_seconds: float,
) -> None:
    """An update's profiles made two at a time (most of the work is in compiled kernels and
    numpy, which release the GIL), each saved by ``saver`` as soon as made; returns once all
    are saved."""
    layouts = {}
    for name in names:
        with conn.cursor() as cur:
            layouts[name] = store.served_layout(cur, name, update[1])
        conn.commit()
    saves: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=UPDATE_WORKERS) as makers:
        making = [
            makers.submit(
                _make_profile,
                url,
                name,
                version,
                roads,
                positions,
                update,
                layouts[name],
                keep,
                previous_roads,
                quiet,
                None,
            )  # fmt: skip
            for name in names
        ]
        for done in as_completed(making):
            made = done.result()
            seconds = time.perf_counter() - made.began + read_seconds / len(names)
            saves.append(
                _submit_save(
                    saver, url, schema_name, version, update, keep, None, quiet, made, seconds
                )
            )
            del made
    for saving in saves:
        saving.result()


def _profile_arrays(
    url: str,
    name: str,
    roads: Any,
    positions: list[Any],
    update: UpdateChanges | None,
    quiet: bool,
    geometries: list[Any],
) -> Arrays:
    """The arrays of profile ``name`` made from ``roads`` (see
    :func:`routing.arrays.profile_arrays`; ``positions``: its :func:`ref_positions` once made,
    for the next profiles; their :class:`routing.arrays.Geometry` appended to ``geometries``):
    an update whose roads differ from those of the previous update (in this process, or kept
    by the last one) only by node locations makes again only the arrays made from them (see
    :func:`routing.arrays.coordinate_arrays`), and copies the others."""
    # routing.arrays reads the array format this module defines: imported here, not at the top.
    from routing.arrays import moved_coordinate_arrays, moved_only, profile_arrays, ref_positions

    def whole(geometries: list[Any] | None = None) -> Arrays:
        with _POSITIONS_LOCK:
            if not positions:
                positions.append(ref_positions(roads))
        return profile_arrays(roads, PROFILES[name], positions[0], geometries)

    built, placed = _BUILT.get((url, name)), _PLACED.pop((url, name), None)
    if not update:
        return whole(geometries)
    if built and placed and built[0] == update[1] and moved_only(placed[0], roads, name):
        _, geometry, names = placed
        if not quiet:
            print(f"routing: {name} only moves the moved nodes' roads", file=sys.stderr)
        made = {key: built[1][key] for key in names}
        made.update(moved_coordinate_arrays(placed[0], roads, geometry, built[1]))
        made["meta"] = store.meta_array(name, roads.data_version)
        geometries.append(geometry)
    else:
        made = whole(geometries)
        geometry = geometries[0]
    _PLACED[(url, name)] = (roads, geometry, list(made))
    return made


def _spill_fields(folder: Path, value: Any) -> Any:
    """``value``, a dataclass or tuple of arrays, with its arrays spilled to ``folder`` (see
    :func:`store.spill`)."""
    if isinstance(value, tuple):
        spilled = store.spill(folder, {str(i): array for i, array in enumerate(value)})
        return tuple(spilled.values())
    spilled = store.spill(folder, {f.name: getattr(value, f.name) for f in fields(value)})
    return replace(value, **spilled)


def _restore(
    url: str,
    name: str,
    previous: str,
    keep: Path,
    roads: Any,
    served: dict[str, dict[str, Any]] | None,
) -> None:
    """Take the build of profile ``name`` for data version ``previous`` (and, with the
    ``roads`` it was made from, its geometry) that the last update or import kept in ``keep``
    as this process's previous build, when the kept one is the served data (of layout
    ``served``): even over one of its own of that version, as its files' pages are shared
    and a patch copies of them only the pages it writes (see :func:`store.writable_copy`)."""
    from routing.patch import kept_build

    found = kept_build(keep, name, previous, served)
    if found is None:
        return
    arrays, geometry, made = found
    built = _BUILT.get((url, name))
    _BUILT[(url, name)] = (previous, arrays)
    if geometry is not None and roads is not None:
        _PLACED[(url, name)] = (roads, geometry, made)
    elif built is None or built[0] != previous:
        _PLACED.pop((url, name), None)


def _once_saved(
    saver: Executor, saving: Future[None], stored: dict[str, Any], action: Callable[[], None]
) -> Future[None]:
    """Run ``action`` on ``saver`` once ``saving`` is done, if it stored a layout (into
    ``stored``); the future of both."""

    def after() -> None:
        saving.result()
        if stored:
            action()

    return saver.submit(after)


def _keep_build(
    keep: Path,
    name: str,
    version: str,
    arrays: Arrays,
    geometry: Any,
    made: list[str],
    stored: dict[str, Any],
    before: tuple[str, dict[str, list[int]], Any, str] | None,
) -> None:
    """Keep the build in ``keep`` (see :func:`routing.patch.write_build`; ``stored``: the
    layout saving stored, ``before``: its :class:`routing.patch.KeptBefore`'s fields)."""
    from routing.patch import KeptBefore, write_build

    kept = KeptBefore(*before) if before is not None else None
    write_build(keep, name, version, arrays, geometry, made, stored, kept)


def _fill_cache(
    cache: Path, name: str, version: str, arrays: Arrays, stored: dict[str, Any]
) -> None:
    """Put the saved profile in the file cache ``cache`` (``stored``: the layout saving
    stored)."""
    try:
        store.fill_cache(cache, name, version, arrays, stored)
    except OSError as error:
        # Only a cache: a server fetches what is missing from the database.
        print(f"routing: {name} not put in the file cache: {error}", file=sys.stderr)


def _save(
    url: str,
    schema_name: str,
    name: str,
    version: str,
    arrays: Arrays,
    seconds: float,
    layout: dict[str, dict[str, Any]] | None,
    reference: Arrays | None,
    staged: bool,
    quiet: bool,
    fresh: dict[str, list[int]] | None = None,
    stored: dict[str, Any] | None = None,
) -> None:
    """Store the routing data ``arrays`` of profile ``name`` (see :func:`store.save`) on a
    connection of its own, committed."""
    began = time.perf_counter()
    nodes, edges = len(arrays["node_ids"]), len(arrays["edge_tail"])
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            size, written = store.save(
                cur,
                schema_name,
                name,
                version,
                arrays,
                build_seconds=seconds,
                nodes=nodes,
                edges=edges,
                previous=layout,
                reference=reference,
                staged=staged,
                fresh_chunks=fresh,
                stored=stored,
            )
    finally:
        conn.close()
    _lap(quiet, f"{name} save", began)
    if not quiet:
        print(
            f"routing: {name} graph {nodes} nodes, {edges} edges, "
            f"{len(arrays['restriction_kind'])} restrictions, {size / 1e6:.1f} MB "
            f"({written / 1e6:.1f} MB written), built in {seconds:.1f} s",
            file=sys.stderr,
        )


def _roads(
    url: str,
    schema_name: str,
    version: str,
    update: UpdateChanges | None,
    keep: Path | None,
    background: Executor,
    *,
    needed: bool,
) -> tuple[Any, Future[None] | None, Any] | None:
    """The road network of ``schema_name`` (every profile's view of it): the previous
    version's patched with what the update changes when it was kept (in memory or in the
    folder ``keep``), else read whole (None when not ``needed`` and not kept); kept for the
    next update (written by ``background``: the future of that is returned too), and the
    previous version's network when kept (else None)."""
    from routing.arrays import (
        patch_roads,
        read_road_changes,
        read_roads_with_reader,
        relabel_roads,
        remember_roads,
        remembered_roads,
    )

    if update is not None and not update[0] and not needed:
        # No road, node, barrier or restriction changes: the same network, recorded as the
        # new version's without reading or writing it.
        relabel_roads(url, update[1], version, keep)
        return None
    known = remembered_roads(url, update[1], keep) if update else None
    if known is not None:
        roads = patch_roads(*known, read_road_changes(url, version))
        reader = known[1]
    elif needed:
        roads, reader = read_roads_with_reader(url, schema_name, version, list(PROFILES.values()))
    else:
        return None
    return (
        roads,
        remember_roads(url, roads, reader, keep, background),
        known[0] if known is not None else None,
    )


def _engine(
    url: str,
    name: str,
    made: Arrays,
    previous: str | None,
    layout: dict[str, dict[str, Any]] | None,
    quiet: bool,
    folder: Path | None = None,
) -> Any:
    """The engine (not searching) that completes the arrays ``made`` of profile ``name`` (with
    a ``folder``, a :class:`routing.spill.SpillingEngine` keeping them in files there): an
    update (``previous``: the data version it updates, ``layout``: the served data's) reuses
    the served turn graph, its order and components when the roads still connect as they did
    (only geometry and weights changed: the arrays stay byte-identical, a server may keep its
    CCH and only customise the new metric), else the served node order."""
    from routing.engine import Engine
    from routing.order import KEY_ARRAYS, ORDER_ARRAY, ReorderedEngine

    if previous is None:
        if folder is not None:
            from routing.spill import SpillingEngine

            return SpillingEngine(made, folder)
        return Engine(made, search=False)
    from routing.patch import PatchedEngine, patchable

    built = _BUILT.get((url, name))
    if built is not None and built[0] == previous and patchable(made, built[1], CONNECTIONS):
        if not quiet:
            print(f"routing: {name} patches its previous build", file=sys.stderr)
        return PatchedEngine(made, built[1], search=False)
    if layout is not None and all(store.same_bytes(made[n], layout.get(n)) for n in CONNECTIONS):
        served = store.load_some(url, name, previous, TURN_GRAPH)
        if served is not None:
            if not quiet:
                print(f"routing: {name} keeps its turn graph", file=sys.stderr)
            return Engine({**made, **served}, search=False)
    # Ordering is most of the build: reuse the served data's node order.
    ordered = store.load_some(url, name, previous, [*KEY_ARRAYS, ORDER_ARRAY])
    if ordered is None:
        return Engine(made, search=False)
    return ReorderedEngine(made, ordered, search=False)


#: How many profiles an update makes at once.
UPDATE_WORKERS = 2
#: The arrays an update last built of each profile, per database, with their data version:
#: the next update in this process (``fondplan update --loop``) patches them where only roads'
#: geometry changed (see :mod:`routing.patch`). An import keeps none: its peak memory stays
#: that of one profile.
_BUILT: dict[tuple[str, str], tuple[str, Arrays]] = {}
#: With the arrays of :data:`_BUILT`: the roads they were made from, what their arrays made
#: from node locations are made of (:class:`routing.arrays.Geometry`) and their names.
_PLACED: dict[tuple[str, str], tuple[Any, Any, list[str]]] = {}
#: The arrays of a profile the turn graph (which edge may follow which), its order and its
#: components are made from: equal ones make equal ones.
CONNECTIONS = (
    "node_ids",
    "edge_tail",
    "edge_head",
    NUMBER_PREFIX + "reverse",
    NUMBER_PREFIX + "way_id",
    "barriers",
    "restriction_kind",
    "restriction_from",
    "restriction_to",
    "restriction_via_offsets",
    "restriction_via",
)
#: The arrays the engine makes from :data:`CONNECTIONS` alone (see ``Engine._compile_turns``
#: and ``Engine._index_pieces``).
TURN_GRAPH = [
    "turn_origin",
    "turn_offsets",
    "turn_next",
    "copy_origin",
    "copy_node",
    "cch_order",
    *CONTRACTION,
    "edge_component",
    "component_size",
]


def _lap(quiet: bool, step: str, since: float) -> None:
    if not quiet:
        print(f"routing: {step} at {time.perf_counter() - since:.2f} s", file=sys.stderr)


#: What an update changes in the road network: the (kind, tags) of the roads and restrictions
#: changed, and the data version it updates.
UpdateChanges = tuple[list[tuple[str, dict[str, str]]], str]


def _update_changes(
    url: str, conn: psycopg2.extensions.connection, schema_name: str
) -> UpdateChanges | None:
    """What the update staged in ``schema_name`` changes (None: not an update's schema).

    An update's network schema lists the tags of the roads and restrictions it changes
    (:data:`osmimport.update.CHANGED_ROADS_TABLE`) beside views of the updated network.
    """
    with conn.cursor() as cur:
        if not table_exists(cur, schema_name, CHANGED_ROADS_TABLE):
            return None
        cur.execute(
            sql.SQL("SELECT kind, tags FROM {}").format(
                sql.Identifier(schema_name, CHANGED_ROADS_TABLE)
            )
        )
        changed = [(str(kind), dict(tags or {})) for kind, tags in cur.fetchall()]
    conn.commit()
    return changed, data_version(url)


def _keep_unchanged(
    url: str,
    conn: psycopg2.extensions.connection,
    schema_name: str,
    version: str,
    names: list[str],
    update: UpdateChanges,
    keep: Path | None = None,
) -> list[str]:
    """The profiles none of whose roads or restrictions the update changes, recorded in
    ``schema_name`` as keeping the served routing data (of the data version updated); their
    last build in this process (of the database at ``url``) stands for the new version too."""
    changed, previous = update
    kept = []
    for name in names:
        profile = PROFILES[name]
        if any(_binds(profile, kind, tags) for kind, tags in changed):
            continue
        stored: dict[str, Any] = {}
        with conn, conn.cursor() as cur:
            if store.keep(cur, schema_name, name, previous, version, stored):
                kept.append(name)
                built = _BUILT.get((url, name))
                if built is not None and built[0] == previous:
                    _BUILT[(url, name)] = (version, built[1])
                if keep is not None:
                    from routing.patch import relabel_build

                    relabel_build(keep, name, previous, version, stored)
    return kept


def _binds(profile: Profile, kind: str, tags: dict[str, str]) -> bool:
    """Whether a changed road (kind ``w``) or restriction (``r``) with ``tags`` is part of
    ``profile``'s routing data."""
    if kind == "r":
        return bool(profile.restriction(tags))
    rule = profile.way(tags)
    return rule is not None and bool(rule.forward or rule.backward)


class _BeforeSwap:
    """The import's before-swap hook (see :meth:`__call__`), which an update prepares (see
    :meth:`prepare`)."""

    def __call__(self, url: str, staging: str, version: str, keep: Path | None = None) -> None:
        """The routing data of the staged import, in its schema; with a folder ``keep`` (an
        import of the command line), also in the routing file cache of the data folder,
        where a server on this machine maps it without reading the database."""
        build_before_swap_now(url, staging, version, keep)

    def prepare(self, url: str, keep: Path | None) -> None:
        """See :func:`prepare_update`."""
        prepare_update(url, keep)


def prepare_update(url: str, keep: Path | None) -> None:
    """What an update's routing build does first, done while its change is staged (see
    :data:`osmimport.importer.PREPARE`): import what patching needs, prune the routing file
    cache, read the road network kept in ``keep`` and map each profile's kept build, its
    pages read ahead (see :func:`routing.patch.read_ahead`): the first update of a process
    then starts its patches at once."""
    done = threading.Event()
    with _PREPARING_LOCK:
        _PREPARING[url] = done
    try:
        _prepare(url, keep)
    finally:
        done.set()


#: Per database, the event an update's preparation sets when done (see :func:`_prepared`).
_PREPARING: dict[str, threading.Event] = {}
_PREPARING_LOCK = threading.Lock()


def _prepared(url: str) -> None:
    """Wait for the update's preparation (:func:`prepare_update`) of the database at ``url``
    to be done, if one runs: a build that patches reads what it read ahead; one that keeps
    every profile starts at once."""
    with _PREPARING_LOCK:
        preparing = _PREPARING.get(url)
    if preparing is not None:
        preparing.wait()


def _prepare(url: str, keep: Path | None) -> None:
    """See :func:`prepare_update`."""
    from routing import patch  # the engine's modules: imported here, not by the build

    if keep is None:
        return
    try:
        version = data_version(url)
    except GraphNotBuiltError:
        return
    from osmimport.importer import data_dir_of_node_store
    from routing.arrays import recall_roads

    # What the build prunes after (the update makes no cached data), done now beside the
    # rest and not waited for: only files of data versions no longer served are removed.
    cache = store.cache_root(data_dir_of_node_store(keep), url)
    pruning = threading.Thread(target=store.prune, args=(cache, {version}), name="routing-prune")
    _PRUNING[cache] = pruning
    pruning.start()
    recall_roads(url, version, keep)
    conn = connect(url)
    try:
        for name in PROFILES:
            with conn.cursor() as cur:
                served = store.served_layout(cur, name, version)
            conn.commit()
            patch.read_ahead(keep, name, version, served)
    finally:
        conn.close()


#: The import's before-swap hook (see :class:`_BeforeSwap`).
build_before_swap = _BeforeSwap()


def build_before_swap_now(url: str, staging: str, version: str, keep: Path | None = None) -> None:
    """See :meth:`_BeforeSwap.__call__`."""
    cache = None
    if keep is not None:
        from osmimport.importer import data_dir_of_node_store

        cache = store.cache_root(data_dir_of_node_store(keep), url)
    build_routing(url, staging, version, keep=keep, cache=cache)
    if cache is not None:
        # What a server on this machine would drop at its next switch: all but the data
        # served now and the new import's.
        try:
            served = {data_version(url)}
        except GraphNotBuiltError:
            served = set()
        pruning = _PRUNING.pop(cache, None)
        if pruning is None or not pruning.is_alive():
            store.prune(cache, {version, *served})


#: Per routing file cache, the thread an update's preparation prunes it in (the build then
#: does not prune it again).
_PRUNING: dict[Path, threading.Thread] = {}


def build_graphs(url: str, *, profiles: Sequence[str] | None = None, quiet: bool = False) -> None:
    """Build and store the routing data of the served data again, for its data version."""
    build_routing(url, schema.SCHEMA, data_version(url), profiles=profiles, quiet=quiet)

"""Each profile's routing arrays made straight from the road tables, with numpy."""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from array import array
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from osmimport import schema
from osmimport.database import connect
from osmimport.update import WORK_SCHEMA
from routing.build import (
    NUMBER_PREFIX,
    TEXT_PREFIX,
    destinations,
    profile_restrictions,
    resolve_restrictions,
    restriction_arrays,
    string_arrays,
)
from routing.kernels import _compiled
from routing.network import _query, _rows, _table, haversine, read_nodes, read_rules, scan_network
from routing.profiles import PROFILES, Profile, WayRule
from routing.store import Arrays, meta_array, writable_copy

#: Tags no profile reads (``Profile.way``): left out of the key its rules are cached by, so
#: that streets differing only by name share one evaluation. A tag missing here only costs
#: cache hits, a tag wrongly here changes results: keep it to tags surely unread.
UNREAD_TAGS = frozenset(
    {
        "name",
        "ref",
        "int_ref",
        "alt_name",
        "old_name",
        "official_name",
        "loc_name",
        "destination",
        "destination:ref",
        "destination:forward",
        "destination:backward",
        "destination:ref:forward",
        "destination:ref:backward",
        "surface",
        "smoothness",
        "tracktype",
        "lanes",
        "width",
        "layer",
        "bridge",
        "tunnel",
        "source",
        "note",
        "fixme",
        "wikidata",
        "wikipedia",
    }
)
#: The tags signposted destinations are read from (see :func:`routing.build.destinations`).
SIGN_TAGS = tuple(
    f"{key}{suffix}"
    for key in ("destination", "destination:ref")
    for suffix in ("", ":forward", ":backward")
)
#: Per-way strings kept (numbers into the pool of :class:`Roads`).
WAY_TEXTS = ("name", "ref", "highway", "junction", "destinations_forward", "destinations_backward")
#: Pool numbers of the ``junction`` values of roundabouts (the first strings of the pool).
CIRCULAR = (1, 2)


#: :func:`routing.network.haversine` compiled from its own code: the same results to the bit.
_haversine = _compiled(haversine)


@_compiled
def _run_lengths(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    out: NDArray[np.float64],
) -> None:
    """Metres from point ``starts[k]`` to point ``ends[k]`` along the points, summed in order."""
    for k in range(len(starts)):
        total = 0.0
        for i in range(starts[k], ends[k]):
            total += _haversine(lon[i], lat[i], lon[i + 1], lat[i + 1])
        out[k] = total


def run_lengths(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Metres along the points from each of ``starts`` to the matching one of ``ends``, equal to
    summing :func:`routing.network.haversine` over the steps in order."""
    out = np.zeros(len(starts), dtype=np.float64)
    if len(starts):
        _run_lengths(lon, lat, starts.astype(np.int64), ends.astype(np.int64), out)
    return out


@_compiled
def _cumulative_lengths(
    points: NDArray[np.float64], first: NDArray[np.bool_], out: NDArray[np.float64]
) -> None:
    total = 0.0
    for k in range(len(first)):
        if first[k]:
            total = 0.0
        out[k] = total
        total += _haversine(points[k, 0], points[k, 1], points[k, 2], points[k, 3])


def cumulative_lengths(
    pieces: NDArray[np.float64], first: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Metres before each piece (lon0, lat0, lon1, lat1 rows) since the last one flagged
    ``first``, summed in order as :func:`routing.network.haversine` would."""
    out = np.zeros(len(first), dtype=np.float64)
    if len(first):
        _cumulative_lengths(np.ascontiguousarray(pieces, dtype=np.float64), first, out)
    return out


@_compiled
def _edge_along(
    points: NDArray[np.float64], offsets: NDArray[np.int64], out: NDArray[np.float64]
) -> None:
    for e in range(len(offsets) - 1):
        total = 0.0
        for i in range(offsets[e], offsets[e + 1]):
            if i > offsets[e]:
                total += _haversine(points[i - 1, 0], points[i - 1, 1], points[i, 0], points[i, 1])
            out[i] = total


def edge_along(points: NDArray[np.float64], offsets: NDArray[np.int64]) -> NDArray[np.float64]:
    """Metres from the start of its edge to each point (edge ``e``: the points
    ``offsets[e]:offsets[e+1]``), summed in order as the edge's length was: each edge's
    values depend on its points only."""
    out = np.zeros(len(points), dtype=np.float64)
    if len(points):
        _edge_along(np.ascontiguousarray(points, dtype=np.float64), offsets.astype(np.int64), out)
    return out


@dataclass
class Roads:
    """The road ways some profile may use as flat arrays, with what each profile makes of them.

    Way ``i`` has the nodes ``refs[way_offsets[i]:way_offsets[i+1]]`` (at least two); per
    profile, ``rule_index[profile][i]`` is its rule in ``rules[profile]``, -1 where the profile
    cannot use it; ``texts[key][i]`` its strings (see :data:`WAY_TEXTS`) as numbers into
    ``pool``, whose string 0 is ``""``."""

    data_version: str
    way_ids: NDArray[np.int64]
    way_offsets: NDArray[np.int64]
    refs: NDArray[np.int64]
    rule_index: dict[str, NDArray[np.int32]]
    rules: dict[str, list[WayRule]]
    rule_modes: dict[str, list[int]]
    texts: dict[str, NDArray[np.int32]]
    pool: list[str]
    node_ids: NDArray[np.int64]
    node_lon: NDArray[np.float64]
    node_lat: NDArray[np.float64]
    barriers: dict[int, dict[str, str]]
    restrictions: list[tuple[int, dict[str, str], list[dict[str, Any]]]]


class _WayReader:
    """Accumulates the usable ways of a stream of rows into growable typed buffers."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        self.profiles = list(profiles)
        self.way_ids = array("q")
        self.sizes = array("q")
        self.refs = array("q")
        self.rule_index = {p.name: array("i") for p in self.profiles}
        self.rules: dict[str, list[WayRule]] = {p.name: [] for p in self.profiles}
        self._rule_numbers: dict[str, dict[WayRule, int]] = {p.name: {} for p in self.profiles}
        self.texts = {key: array("i") for key in WAY_TEXTS}
        self.strings: dict[str, int] = {"": 0, "roundabout": CIRCULAR[0], "circular": CIRCULAR[1]}
        #: Per profile, the pool number of each rule's mode.
        self.rule_modes: dict[str, list[int]] = {p.name: [] for p in self.profiles}
        self._cache: dict[tuple[tuple[str, str], ...], tuple[tuple[int, ...], int, int]] = {}
        self._signs: dict[tuple[str | None, ...], tuple[int, int]] = {}
        self._rule_index = [self.rule_index[p.name] for p in self.profiles]
        self._texts = [self.texts[key] for key in WAY_TEXTS]

    def __getstate__(self) -> dict[str, Any]:
        # Profiles hold functions: kept by name, found again when read back.
        state = dict(self.__dict__)
        state["profiles"] = [p.name for p in self.profiles]
        del state["_rule_index"], state["_texts"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.profiles = [PROFILES[name] for name in state["profiles"]]
        self._rule_index = [self.rule_index[p.name] for p in self.profiles]
        self._texts = [self.texts[key] for key in WAY_TEXTS]

    def fresh(self) -> _WayReader:
        """A reader of more ways that numbers rules and strings on from this one's (it shares
        and extends them)."""
        other = _WayReader(self.profiles)
        for shared in ("rules", "_rule_numbers", "strings", "rule_modes", "_cache", "_signs"):
            setattr(other, shared, getattr(self, shared))
        return other

    def _number(self, name: str, rule: WayRule | None) -> int:
        if rule is None or not (rule.forward or rule.backward):
            return -1
        numbers = self._rule_numbers[name]
        if rule not in numbers:
            numbers[rule] = len(numbers)
            self.rules[name].append(rule)
            self.rule_modes[name].append(self.strings.setdefault(rule.mode, len(self.strings)))
        return numbers[rule]

    def _text(self, value: str) -> int:
        return self.strings.setdefault(value, len(self.strings))

    def add(self, osm_id: int, tags: dict[str, str], nodes: list[int]) -> None:
        if len(nodes) < 2:
            return
        key = tuple(item for item in tags.items() if item[0] not in UNREAD_TAGS)
        cached = self._cache.get(key)
        if cached is None:
            numbers = tuple(self._number(p.name, p.way(tags)) for p in self.profiles)
            # highway and junction are part of the key: their numbers are cached with it.
            highway = self._text(tags.get("highway", tags.get("route", "")))
            cached = (numbers, highway, self._text(tags.get("junction", "")))
            self._cache[key] = cached
        numbers, highway, junction = cached
        if max(numbers) < 0:
            return
        self.way_ids.append(osm_id)
        self.sizes.append(len(nodes))
        self.refs.extend(nodes)
        for rule_index, number in zip(self._rule_index, numbers, strict=True):
            rule_index.append(number)
        signs = tuple(tags.get(sign) for sign in SIGN_TAGS)
        directions = self._signs.get(signs)
        if directions is None:
            directions = (
                self._text(destinations(tags, True)),
                self._text(destinations(tags, False)),
            )
            self._signs[signs] = directions
        for column, value in zip(
            self._texts,
            (
                self._text(tags.get("name", "")),
                self._text(tags.get("ref", "")),
                highway,
                junction,
                *directions,
            ),
            strict=True,
        ):
            column.append(value)


def read_roads(url: str, schema_name: str, version: str, profiles: Sequence[Profile]) -> Roads:
    """The road network of ``schema_name`` as :class:`Roads` for ``profiles``, streamed: the
    ways in batches through a server-side cursor, the nodes in packed pages."""
    return read_roads_with_reader(url, schema_name, version, profiles)[0]


def read_roads_with_reader(
    url: str, schema_name: str, version: str, profiles: Sequence[Profile]
) -> tuple[Roads, _WayReader]:
    """:func:`read_roads`, and the reader whose numbering :func:`patch_roads` goes on with."""
    reader = _WayReader(profiles)
    (node_ids, node_lon, node_lat), barriers, restrictions = scan_network(
        url, schema_name, reader.add
    )
    offsets = np.zeros(len(reader.sizes) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(reader.sizes, dtype=np.int64), out=offsets[1:])
    roads = Roads(
        data_version=version,
        way_ids=np.frombuffer(reader.way_ids, dtype=np.int64),
        way_offsets=offsets,
        refs=np.frombuffer(reader.refs, dtype=np.int64),
        rule_index={k: np.frombuffer(v, dtype=np.int32) for k, v in reader.rule_index.items()},
        rules=reader.rules,
        rule_modes=reader.rule_modes,
        texts={k: np.frombuffer(v, dtype=np.int32) for k, v in reader.texts.items()},
        pool=list(reader.strings),
        node_ids=node_ids,
        node_lon=node_lon,
        node_lat=node_lat,
        barriers=barriers,
        restrictions=restrictions,
    )
    # The reader's buffers are the arrays now: it keeps only its numbering.
    reader.way_ids, reader.sizes, reader.refs = array("q"), array("q"), array("q")
    reader.rule_index = {p.name: array("i") for p in reader.profiles}
    reader.texts = {key: array("i") for key in WAY_TEXTS}
    reader._rule_index = [reader.rule_index[p.name] for p in reader.profiles]
    reader._texts = [reader.texts[key] for key in WAY_TEXTS]
    return roads, reader


@dataclass
class RoadChanges:
    """What an update changes in the road network: the ways whose rows it replaces (by id)
    and their new rows, the road nodes whose rows (and barrier rows) it replaces and their
    new rows (ascending ids) and barrier rows, the restrictions whose rows it replaces (by
    id) and their new rows."""

    version: str
    replaced_ways: NDArray[np.int64]
    ways: list[tuple[int, dict[str, str], list[int]]]
    replaced_nodes: NDArray[np.int64]
    nodes: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]
    barriers: dict[int, dict[str, str]]
    replaced_restrictions: NDArray[np.int64]
    restrictions: list[tuple[int, dict[str, str], list[dict[str, Any]]]]


def read_road_changes(url: str, version: str) -> RoadChanges:
    """What the update staged (in :data:`osmimport.update.WORK_SCHEMA`, by
    ``update_network.sql``) changes in the road network, as data version ``version``."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(_query("replaced_ways.sql", affected=_table("affected", WORK_SCHEMA)))
            replaced_ways = np.asarray([row[0] for row in cur.fetchall()], dtype=np.int64)
            cur.execute(_query("road_ways.sql", ways=_table("road_ways", WORK_SCHEMA)))
            ways = [(int(osm_id), tags or {}, refs) for osm_id, tags, refs in _rows(cur)]
            candidates = _table("road_node_candidates", WORK_SCHEMA)
            cur.execute(_query("replaced_nodes.sql", candidates=candidates))
            replaced_nodes = np.asarray([row[0] for row in cur.fetchall()], dtype=np.int64)
            cur.execute(_query("replaced_relations.sql", affected=_table("affected", WORK_SCHEMA)))
            replaced_restrictions = np.asarray([row[0] for row in cur.fetchall()], dtype=np.int64)
        nodes = read_nodes(conn, _table("road_nodes_final", WORK_SCHEMA))
        # The barrier rows of the replaced nodes, the restrictions of the replaced relations:
        # few, where the whole network has many.
        barriers, restrictions = read_rules(
            conn, lambda name: _table(_CHANGED_RULES.get(name, name), WORK_SCHEMA)
        )
    finally:
        conn.close()
    return RoadChanges(
        version, replaced_ways, ways, replaced_nodes, nodes, barriers, replaced_restrictions,
        restrictions,
    )  # fmt: skip


#: The work tables holding the rows after an update of the rule tables it replaces rows of.
_CHANGED_RULES = {schema.BARRIERS_TABLE: "barriers_final"}


#: The road network last read or patched, per database, with its reader: the next update
#: patches it rather than reading every road again (kept on disk too, for the next process).
_ROADS: dict[str, tuple[Roads, _WayReader]] = {}
_ROADS_LOCK = threading.Lock()
ROADS_FILE = "roads.pickle"
#: The data versions the kept network stands for, one a line (written after it).
ROADS_VERSIONS_FILE = "roads.versions"
#: What the kept network depends on besides the data: the code that reads ways into rules
#: (profiles, speeds); a network kept by other code is read again.
_CODE = hashlib.sha1(
    b"".join(path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py"))),
    usedforsecurity=False,
).hexdigest()


def remember_roads(
    url: str,
    roads: Roads,
    reader: _WayReader,
    keep: Path | None,
    background: Executor | None = None,
) -> Future[None] | None:
    """Keep ``roads`` (of its data version) for the next update of the database at ``url``
    (in this process, and in the folder ``keep`` for the next: written by ``background``
    when given, whose future is returned)."""
    _ROADS[url] = (roads, reader)
    if keep is None:
        return None
    if background is not None:
        return background.submit(_write_roads, roads, reader, keep)
    _write_roads(roads, reader, keep)
    return None


def _write_roads(roads: Roads, reader: _WayReader, keep: Path) -> None:
    target = keep / ROADS_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{ROADS_FILE}-{os.getpid()}")
        with partial.open("wb") as out:
            pickle.dump((_CODE, roads, reader), out, protocol=pickle.HIGHEST_PROTOCOL)
        _write_versions(keep, [])
        partial.replace(target)
        _write_versions(keep, [roads.data_version])
    except OSError:
        # Only a cache: the next update reads the roads again.
        pass


def relabel_roads(url: str, version: str, new_version: str, keep: Path | None) -> None:
    """Record that the road network kept of ``version`` is also that of ``new_version`` (an
    update that changes no road), without writing the network again."""
    with _ROADS_LOCK:
        found = _ROADS.get(url)
        if found is not None and found[0].data_version == version:
            _ROADS[url] = (replace(found[0], data_version=new_version), found[1])
    if keep is None:
        return
    versions = _read_versions(keep)
    if version in versions:
        try:
            _write_versions(keep, [*versions[-7:], new_version])
        except OSError:
            pass


def _read_versions(keep: Path) -> list[str]:
    """The data versions whose road network the file in ``keep`` is."""
    try:
        return (keep / ROADS_VERSIONS_FILE).read_text("utf-8").split()
    except OSError:
        return []


def _write_versions(keep: Path, versions: list[str]) -> None:
    partial = keep / f".{ROADS_VERSIONS_FILE}-{os.getpid()}"
    partial.write_text("".join(f"{version}\n" for version in versions), "utf-8")
    partial.replace(keep / ROADS_VERSIONS_FILE)


def remembered_roads(url: str, version: str, keep: Path | None) -> tuple[Roads, _WayReader] | None:
    """The road network of data version ``version`` kept by :func:`remember_roads` (in this
    process, else in the folder ``keep``)."""
    found = _ROADS.get(url)
    if found is not None and found[0].data_version == version:
        return found
    if keep is None or version not in _read_versions(keep):
        return None
    try:
        with (keep / ROADS_FILE).open("rb") as source:
            code, *kept = pickle.load(source)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, KeyError, ValueError):
        return None
    if code != _CODE:
        return None
    return (replace(kept[0], data_version=version), kept[1])


def recall_roads(url: str, version: str, keep: Path | None) -> None:
    """Read the road network of ``version`` kept in the folder ``keep`` into this process's
    memory, where :func:`remembered_roads` finds it next (an update does it ahead)."""
    found = remembered_roads(url, version, keep)
    with _ROADS_LOCK:
        known = _ROADS.get(url)
        # Not over another version's (an update relabelling it meanwhile).
        if found is not None and (known is None or known[0].data_version == version):
            _ROADS[url] = found


def patch_roads(roads: Roads, reader: _WayReader, changes: RoadChanges) -> Roads:
    """The :class:`Roads` that :func:`read_roads` reads of the network after ``changes``,
    made from ``roads`` (read by ``reader``, which numbers the new ways' rules and strings on)
    by replacing the changed ways and nodes: array for array what reading again gives."""
    delta = reader.fresh()
    for osm_id, tags, nodes in sorted(changes.ways, key=lambda way: way[0]):
        delta.add(osm_id, tags, nodes)
    sizes = np.diff(roads.way_offsets)
    kept = ~np.isin(roads.way_ids, changes.replaced_ways)
    new_sizes = np.frombuffer(delta.sizes, dtype=np.int64)
    ids = np.concatenate([roads.way_ids[kept], np.frombuffer(delta.way_ids, dtype=np.int64)])
    order = np.argsort(ids, kind="stable")
    all_sizes = np.concatenate([sizes[kept], new_sizes])
    refs = np.concatenate(
        [roads.refs[np.repeat(kept, sizes)], np.frombuffer(delta.refs, dtype=np.int64)]
    )
    ordered_sizes = all_sizes[order]
    refs = refs[np.repeat(_starts(all_sizes)[order], ordered_sizes) + within(ordered_sizes)]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(ordered_sizes, out=offsets[1:])

    def merged(old: NDArray[Any], new: Any, dtype: Any) -> NDArray[Any]:
        return np.concatenate([old[kept], np.frombuffer(new, dtype=dtype)])[order]

    node_kept = ~np.isin(roads.node_ids, changes.replaced_nodes)
    new_ids, new_lon, new_lat = changes.nodes
    node_ids = np.concatenate([roads.node_ids[node_kept], new_ids])
    node_order = np.argsort(node_ids, kind="stable")
    return Roads(
        data_version=changes.version,
        way_ids=ids[order],
        way_offsets=offsets,
        refs=refs,
        rule_index={
            k: merged(v, delta.rule_index[k], np.int32) for k, v in roads.rule_index.items()
        },
        rules=reader.rules,
        rule_modes=reader.rule_modes,
        texts={k: merged(v, delta.texts[k], np.int32) for k, v in roads.texts.items()},
        pool=list(reader.strings),
        node_ids=node_ids[node_order],
        node_lon=np.concatenate([roads.node_lon[node_kept], new_lon])[node_order],
        node_lat=np.concatenate([roads.node_lat[node_kept], new_lat])[node_order],
        barriers=_patched_barriers(roads.barriers, changes),
        restrictions=_patched_restrictions(roads.restrictions, changes),
    )


def _patched_barriers(
    barriers: dict[int, dict[str, str]], changes: RoadChanges
) -> dict[int, dict[str, str]]:
    """``barriers`` with those of the replaced nodes replaced (the others' tags are the same
    objects: see :func:`_blocking_changed`)."""
    replaced = set(changes.replaced_nodes.tolist())
    patched = {node: tags for node, tags in barriers.items() if node not in replaced}
    patched.update(changes.barriers)
    return patched


def _patched_restrictions(
    restrictions: list[tuple[int, dict[str, str], list[dict[str, Any]]]], changes: RoadChanges
) -> list[tuple[int, dict[str, str], list[dict[str, Any]]]]:
    """``restrictions`` with those of the replaced relations replaced, in id order (as read)."""
    replaced = set(changes.replaced_restrictions.tolist())
    kept = [r for r in restrictions if r[0] not in replaced]
    return sorted([*kept, *changes.restrictions], key=lambda r: r[0])


def _lookup(ids: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.int64]:
    """The index of each of ``wanted`` in the sorted ``ids``, -1 where absent."""
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    return np.where(ids[at] == wanted, at, -1).astype(np.int64)


def _starts(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    starts = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts


def within(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """0, 1, ... size-1 for each of ``sizes``, concatenated."""
    total = int(sizes.sum())
    result: NDArray[np.int64] = np.arange(total, dtype=np.int64) - np.repeat(_starts(sizes), sizes)
    return result


#: Per node reference of the roads, its index in their nodes (-1 where missing) and its
#: way; per way, how many of its nodes are missing: the same for every profile.
RefPositions = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def ref_positions(roads: Roads) -> RefPositions:
    """The :data:`RefPositions` of ``roads``."""
    sizes = np.diff(roads.way_offsets)
    way_of_ref = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    at = _lookup(roads.node_ids, roads.refs)
    return at, way_of_ref, np.bincount(way_of_ref[at < 0], minlength=len(sizes))


@dataclass
class Geometry:
    """What the arrays of a profile made from node locations are made of (the rest of them
    depends on how the roads connect, their tags and the profile): indices into the roads'
    nodes and the pieces' fields (see :func:`profile_arrays`)."""

    pos: NDArray[np.int64]
    piece_start: NDArray[np.int64]
    piece_end: NDArray[np.int64]
    piece_way: NDArray[np.int64]
    firsts: NDArray[np.int64]
    lasts: NDArray[np.int64]
    timed_ways: NDArray[np.int64]
    edge_piece: NDArray[np.int64]
    edge_duration: NDArray[np.float64]
    speed: NDArray[np.float64]
    ends: NDArray[np.int64]
    source: NDArray[np.int64]


def coordinate_arrays(roads: Roads, geometry: Geometry) -> Arrays:
    """The arrays of a profile made from the locations of ``roads``' nodes: node locations,
    lengths, durations, weights and the geometries."""
    g = geometry
    lon, lat = roads.node_lon[g.pos], roads.node_lat[g.pos]
    edge_length = run_lengths(lon, lat, g.piece_start, g.piece_end)[g.edge_piece]
    totals = np.zeros(len(g.firsts), dtype=np.float64)
    totals[g.timed_ways] = run_lengths(lon, lat, g.firsts[g.timed_ways], g.lasts[g.timed_ways])
    edge_total = totals[g.piece_way[g.edge_piece]]
    with np.errstate(divide="ignore", invalid="ignore"):
        travel_time = np.where(
            (g.edge_duration > 0) & (edge_total > 0),
            g.edge_duration * edge_length / edge_total,
            edge_length / (g.speed / 3.6),
        )
    return {
        "node_lon": roads.node_lon[g.ends],
        "node_lat": roads.node_lat[g.ends],
        NUMBER_PREFIX + "length": edge_length,
        NUMBER_PREFIX + "travel_time": travel_time,
        NUMBER_PREFIX + "weight": np.maximum(1, np.rint(travel_time * 1000.0)).astype(np.int64),
        "geometry": _points(lon, lat, g.source),
    }


def _points(
    lon: NDArray[np.float64], lat: NDArray[np.float64], at: NDArray[np.int64]
) -> NDArray[np.float64]:
    """The (lon, lat) rows of the points ``at``, filled a column at a time."""
    points = np.empty((len(at), 2), dtype=np.float64)
    points[:, 0] = lon[at]
    points[:, 1] = lat[at]
    return points


def moved_coordinate_arrays(
    old: Roads, roads: Roads, geometry: Geometry, previous: Mapping[str, NDArray[Any]]
) -> Arrays:
    """:func:`coordinate_arrays` of ``roads``, made from ``previous`` (those of ``old``,
    whose nodes are ``roads``' but for their locations: see :func:`moved_only`): only the
    points, pieces and edges of the nodes that moved are computed again."""
    g = geometry
    moved = (roads.node_lon != old.node_lon) | (roads.node_lat != old.node_lat)
    lon, lat = roads.node_lon[g.pos], roads.node_lat[g.pos]
    points = np.flatnonzero(moved[g.pos])
    # The pieces holding a moved point (two where it ends one and starts the next).
    pieces = np.unique(
        np.concatenate(
            [
                np.searchsorted(g.piece_end, points, side="left"),
                np.searchsorted(g.piece_start, points, side="right") - 1,
            ]
        )
    )
    pieces = pieces[(pieces >= 0) & (pieces < len(g.piece_start))]
    timed = np.intersect1d(g.piece_way[pieces], g.timed_ways)
    totals = np.zeros(len(g.firsts), dtype=np.float64)
    totals[timed] = run_lengths(lon, lat, g.firsts[timed], g.lasts[timed])
    # Every piece of a timed way whose length changed: its edges' durations share it.
    low, high = (
        np.searchsorted(g.piece_way, timed, side="left"),
        np.searchsorted(g.piece_way, timed, side="right"),
    )
    sizes = high - low
    pieces = np.union1d(pieces, np.repeat(low, sizes) + within(sizes))
    low, high = (
        np.searchsorted(g.edge_piece, pieces, side="left"),
        np.searchsorted(g.edge_piece, pieces, side="right"),
    )
    sizes = high - low
    edges = np.repeat(low, sizes) + within(sizes)
    piece_length = run_lengths(lon, lat, g.piece_start[pieces], g.piece_end[pieces])
    length = writable_copy(previous[NUMBER_PREFIX + "length"])
    length[edges] = piece_length[np.searchsorted(pieces, g.edge_piece[edges])]
    edge_length = length[edges]
    edge_total = totals[g.piece_way[g.edge_piece[edges]]]
    duration, speed = g.edge_duration[edges], g.speed[edges]
    with np.errstate(divide="ignore", invalid="ignore"):
        changed_time = np.where(
            (duration > 0) & (edge_total > 0),
            duration * edge_length / edge_total,
            edge_length / (speed / 3.6),
        )
    travel_time = writable_copy(previous[NUMBER_PREFIX + "travel_time"])
    travel_time[edges] = changed_time
    weight = writable_copy(previous[NUMBER_PREFIX + "weight"])
    weight[edges] = np.maximum(1, np.rint(changed_time * 1000.0)).astype(np.int64)
    node_lon, node_lat = writable_copy(previous["node_lon"]), writable_copy(previous["node_lat"])
    ends = np.flatnonzero(moved[g.ends])
    node_lon[ends], node_lat[ends] = roads.node_lon[g.ends[ends]], roads.node_lat[g.ends[ends]]
    points_out = writable_copy(previous["geometry"])
    shifted = np.flatnonzero(moved[g.pos[g.source]])
    source = g.source[shifted]
    points_out[shifted, 0], points_out[shifted, 1] = lon[source], lat[source]
    return {
        "node_lon": node_lon,
        "node_lat": node_lat,
        NUMBER_PREFIX + "length": length,
        NUMBER_PREFIX + "travel_time": travel_time,
        NUMBER_PREFIX + "weight": weight,
        "geometry": points_out,
    }


def moved_only(old: Roads, new: Roads, profile: str) -> bool:
    """Whether ``new`` differs from ``old`` at most by the locations of nodes, as ``profile``
    sees them (the same ways, rules, strings, nodes, barriers and restrictions)."""
    return (
        old.rules[profile] == new.rules[profile]
        and old.rule_modes[profile] == new.rule_modes[profile]
        and old.pool == new.pool
        and not _blocking_changed(old.barriers, new.barriers, PROFILES[profile])
        and old.restrictions == new.restrictions
        and all(
            np.array_equal(getattr(old, name), getattr(new, name))
            for name in ("way_ids", "way_offsets", "refs", "node_ids")
        )
        and np.array_equal(old.rule_index[profile], new.rule_index[profile])
        and all(np.array_equal(old.texts[k], new.texts[k]) for k in WAY_TEXTS)
    )


def _blocking_changed(
    old: dict[int, dict[str, str]], new: dict[int, dict[str, str]], profile: Profile
) -> bool:
    """Whether a barrier that stops ``profile`` is added, removed or changed (the only use
    :func:`profile_arrays` makes of barriers)."""
    if old is new:
        return False
    # A patched network's unchanged barriers hold the same tags objects: compared by identity
    # first, the few others by value.
    changed = [
        node
        for node in old.keys() | new.keys()
        if old.get(node) is not new.get(node) and old.get(node) != new.get(node)
    ]
    return any(
        profile.barrier_blocks(old.get(node) or {}) or profile.barrier_blocks(new.get(node) or {})
        for node in changed
    )


def profile_arrays(
    roads: Roads,
    profile: Profile,
    positions: RefPositions | None = None,
    geometries: list[Geometry] | None = None,
) -> Arrays:
    """The routing data of ``profile`` as :func:`routing.build.graph_arrays` makes it from
    :func:`routing.build.build_profile_graph`'s graph, array for array, made with numpy
    (``positions``: :func:`ref_positions` of ``roads``, when made already for another; its
    :class:`Geometry` appended to ``geometries``)."""
    name = profile.name
    numbers = roads.rule_index[name]
    sizes = np.diff(roads.way_offsets)
    at, way_of_ref, missing = positions or ref_positions(roads)
    usable = (numbers >= 0) & (missing == 0)
    ways = np.flatnonzero(usable)
    # The nodes of the usable ways, as indices into the road nodes, way after way.
    keep = usable[way_of_ref]
    pos = at[keep]
    refs = roads.refs[keep]
    del at, keep, way_of_ref, missing, positions
    way_sizes = sizes[ways]
    firsts = _starts(way_sizes)
    lasts = firsts + way_sizes - 1
    nodes = len(roads.node_ids)
    occurrences = np.bincount(pos, minlength=nodes)
    occurrences += np.bincount(pos[firsts], minlength=nodes)
    occurrences += np.bincount(pos[lasts], minlength=nodes)
    split = occurrences > 1
    blocked_ids = _blocked(roads, profile, occurrences > 0)
    split[_lookup(roads.node_ids, blocked_ids)] = True
    restrictions = profile_restrictions(roads.restrictions, profile)
    via = np.asarray([n for r in restrictions for n in r.via_nodes], dtype=np.int64)
    found = _lookup(roads.node_ids, via)
    split[found[found >= 0]] = True
    del occurrences
    # Pieces: from a way's first node, or a split node, to the next split node or its last.
    bounds = split[pos]
    bounds[firsts] = True
    bounds[lasts] = True
    del split
    ends_here = np.zeros(len(pos), dtype=np.bool_)
    ends_here[lasts] = True
    marks = np.flatnonzero(bounds)
    del bounds
    starting = ~ends_here[marks[:-1]]
    piece_start = marks[:-1][starting]
    piece_end = marks[1:][starting]
    del marks, starting, ends_here
    piece_way = np.repeat(np.arange(len(ways), dtype=np.int64), way_sizes)[piece_start]
    # The rules' fields, per piece.
    rules = roads.rules[name]
    rule = numbers[ways][piece_way]

    def field(get: Any, dtype: Any) -> NDArray[Any]:
        return np.asarray([get(r) for r in rules], dtype=dtype).reshape(len(rules))[rule]

    forward = field(lambda r: r.forward, np.bool_)
    backward = field(lambda r: r.backward, np.bool_)
    duration = field(lambda r: r.duration or 0.0, np.float64)
    # Edges: the forward one of a piece (when allowed), then the backward one.
    count = forward.astype(np.int64) + backward
    first_edge = _starts(count)
    edges = int(count.sum())
    edge_piece = np.repeat(np.arange(len(count), dtype=np.int64), count)
    edge_forward = np.zeros(edges, dtype=np.bool_)
    edge_forward[first_edge] = forward
    reverse = np.full(edges, -1, dtype=np.int64)
    both = first_edge[count == 2]
    reverse[both] = both + 1
    reverse[both + 1] = both
    edge_rule = rule[edge_piece]
    speed = np.where(
        edge_forward,
        field(lambda r: r.speed_forward, np.float64)[edge_piece],
        field(lambda r: r.speed_backward, np.float64)[edge_piece],
    )
    timed_ways = np.unique(piece_way[np.flatnonzero(duration > 0)])
    # Graph nodes: the pieces' ends.
    tail_pos = np.where(edge_forward, piece_start[edge_piece], piece_end[edge_piece])
    head_pos = np.where(edge_forward, piece_end[edge_piece], piece_start[edge_piece])
    ends = np.unique(np.concatenate([pos[piece_start], pos[piece_end]]))
    edge_way = ways[piece_way[edge_piece]]
    # Geometries: each piece's points, reversed for a backward edge.
    points = (piece_end - piece_start + 1)[edge_piece]
    geometry_offsets = np.zeros(edges + 1, dtype=np.int64)
    np.cumsum(points, out=geometry_offsets[1:])
    # Per point: its edge's first position (its tail's), plus (forward) or minus (backward)
    # its rank; made in place, these being the largest arrays a profile makes at once.
    step = within(points)
    step *= np.repeat(np.where(edge_forward, 1, -1).astype(np.int8), points)
    source = np.repeat(tail_pos, points)
    source += step
    geometry_nodes = refs[source]
    del step, points, refs, forward, backward, count, first_edge, both
    geometry = Geometry(
        pos, piece_start, piece_end, piece_way, firsts, lasts, timed_ways, edge_piece,
        duration[edge_piece], speed, ends, source,
    )  # fmt: skip
    placed = coordinate_arrays(roads, geometry)
    if geometries is not None:
        geometries.append(geometry)
    arrays: Arrays = {
        "meta": meta_array(name, roads.data_version),
        "node_ids": roads.node_ids[ends],
        "node_lon": placed["node_lon"],
        "node_lat": placed["node_lat"],
        "edge_tail": np.searchsorted(ends, pos[tail_pos]),
        "edge_head": np.searchsorted(ends, pos[head_pos]),
    }
    del tail_pos, head_pos
    texts = roads.texts
    mode_numbers = np.asarray(roads.rule_modes[name], dtype=np.int32).reshape(len(rules))
    text_columns = {
        "destinations": np.where(
            edge_forward,
            texts["destinations_forward"][edge_way],
            texts["destinations_backward"][edge_way],
        ),
        "highway": texts["highway"][edge_way],
        "junction": texts["junction"][edge_way],
        "mode": mode_numbers[edge_rule],
        "name": texts["name"][edge_way],
        "ref": texts["ref"][edge_way],
    }
    numbers_columns: dict[str, NDArray[Any]] = {
        "length": placed[NUMBER_PREFIX + "length"],
        "restricted": field(lambda r: r.restricted, np.bool_)[edge_piece],
        "reverse": reverse,
        "roundabout": np.isin(texts["junction"][edge_way], CIRCULAR),
        "startpoint": field(lambda r: r.startpoint, np.bool_)[edge_piece],
        "travel_time": placed[NUMBER_PREFIX + "travel_time"],
        "way_id": roads.way_ids[edge_way],
        "weight": placed[NUMBER_PREFIX + "weight"],
    }
    # The string pool in the model's order: "" first, then by first use over the text columns
    # in name order, edge after edge.
    # (Where each string is first used, column after column: not the columns end to end.)
    unused = np.iinfo(np.int64).max
    first_use = np.full(len(roads.pool), unused, dtype=np.int64)
    for k, key in enumerate(sorted(text_columns)):
        ids, at = np.unique(text_columns[key], return_index=True)
        first_use[ids] = np.minimum(first_use[ids], k * edges + at)
    used = np.flatnonzero(first_use != unused)
    order = used[np.argsort(first_use[used], kind="stable")]
    order = np.r_[0, order[order != 0]].astype(np.int64)
    del first_use, used
    local = np.zeros(len(roads.pool), dtype=np.int32)
    local[order] = np.arange(len(order), dtype=np.int32)
    for key in sorted({*numbers_columns, *text_columns}):
        if key in text_columns:
            arrays[TEXT_PREFIX + key] = local[text_columns[key]]
        else:
            arrays[NUMBER_PREFIX + key] = numbers_columns[key]
    arrays.update(string_arrays(roads.pool[i] for i in order.tolist()))
    arrays["geometry_offsets"] = geometry_offsets
    arrays["geometry"] = placed["geometry"]
    arrays["geometry_nodes"] = geometry_nodes
    del source, placed, geometry, geometry_nodes, text_columns, numbers_columns, edge_way
    arrays["barriers"] = blocked_ids
    by_way = _edges_of_ways(
        {w for r in restrictions for w in (r.from_way, r.to_way, *r.via_ways)},
        arrays[NUMBER_PREFIX + "way_id"],
        arrays["node_ids"][arrays["edge_tail"]],
        arrays["node_ids"][arrays["edge_head"]],
    )
    arrays.update(restriction_arrays(resolve_restrictions(restrictions, by_way)))
    return arrays


def _blocked(roads: Roads, profile: Profile, occurring: NDArray[np.bool_]) -> NDArray[np.int64]:
    """The barrier nodes on the profile's ways that stop it, ascending."""
    ids = np.asarray(sorted(roads.barriers), dtype=np.int64)
    at = _lookup(roads.node_ids, ids)
    on_ways = np.zeros(len(ids), dtype=np.bool_)
    on_ways[at >= 0] = occurring[at[at >= 0]]
    verdicts: dict[tuple[tuple[str, str], ...], bool] = {}
    blocked = []
    for node in ids[on_ways].tolist():
        tags = roads.barriers[node]
        key = tuple(sorted(tags.items()))
        if key not in verdicts:
            verdicts[key] = profile.barrier_blocks(tags)
        if verdicts[key]:
            blocked.append(node)
    return np.asarray(blocked, dtype=np.int64)


def _edges_of_ways(
    wanted: set[int],
    way_id: NDArray[np.int64],
    tails: NDArray[np.int64],
    heads: NDArray[np.int64],
) -> dict[int, list[tuple[int, int, int]]]:
    """The (tail, head, key) of the edges of each of ``wanted`` that has edges (edges are in
    way id order)."""
    by_way: dict[int, list[tuple[int, int, int]]] = {}
    for way in sorted(wanted):
        low, high = np.searchsorted(way_id, [way, way + 1]).tolist()
        if high > low:
            keys = range(low, high)
            by_way[way] = list(
                zip(tails[low:high].tolist(), heads[low:high].tolist(), keys, strict=True)
            )
    return by_way

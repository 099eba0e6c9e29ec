"""The pyosmium pass: reads an OSM file once and streams rows into the staging tables."""

from __future__ import annotations

import json
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import osmium
import osmium.filter
import osmium.geom
import psycopg2.extensions
from psycopg2 import sql

from osmimport import mapping, schema
from osmimport.copybuffer import NULL, CopyBuffer, CopySender, copy_value
from osmimport.mapping import Feature

#: Node tags that matter to routing when the node lies on a road way.
BARRIER_KEYS = frozenset(
    {"barrier", "access", "motor_vehicle", "motorcar", "vehicle", "bicycle", "foot", "highway",
     "traffic_calming", "railway", "crossing", "ford", "entrance", "noexit"}
)  # fmt: skip

RAW_PREFIX = "raw_"
SYSTEM_RAW_COLUMNS = ("osm_type", "osm_id", "geom", "minzoom", "sort_key")

#: Raw tables besides the per-layer ones: name -> column definitions.
RAW_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "raw_road_ways": (
        ("osm_id", "bigint"),
        ("tags", "jsonb"),
        ("nodes", "bigint[]"),
        ("geom", "geometry(Geometry, 4326)"),
        # A point per node when ``geom`` has fewer (consecutive nodes at one location).
        ("points", "geometry(Geometry, 4326)"),
    ),
    "raw_barriers": (("osm_id", "bigint"), ("tags", "jsonb")),
    "raw_restrictions": (("osm_id", "bigint"), ("tags", "jsonb"), ("members", "jsonb")),
    "raw_communes": (
        ("osm_id", "bigint"),
        ("name", "text"),
        ("name_fr", "text"),
        ("name_de", "text"),
        ("name_en", "text"),
        ("admin_level", "integer"),
        ("country", "text"),
        ("insee", "text"),
        ("population", "bigint"),
        ("geom", "geometry(Geometry, 4326)"),
        # de:place or place: a level-6 "county" (Landkreis) is never a commune.
        ("place", "text"),
    ),
    "raw_commune_ways": (("relation_id", "bigint"), ("geom", "geometry(Geometry, 4326)")),
    "raw_countries": (("osm_id", "bigint"), ("code", "text"), ("geom", "geometry(Geometry, 4326)")),
}

#: Tables an update needs, kept in the served schema by imports that keep node locations:
#: every way (its nodes and tags), the relations that can make rows, and the node locations
#: changed by updates since the import (NULL: deleted), read before the import's node file.
MIDDLE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "mid_ways": (("id", "bigint"), ("nodes", "bigint[]"), ("tags", "jsonb")),
    "mid_relations": (
        ("id", "bigint"),
        ("tags", "jsonb"),
        # [[type, ref, role], ...]
        ("members", "jsonb"),
        ("way_ids", "bigint[]"),
    ),
    "mid_nodes": (("id", "bigint PRIMARY KEY"), ("lon", "float8"), ("lat", "float8")),
}
#: Raw tables an update reads again (the commune and barrier rules look across objects).
KEPT_RAW_TABLES = ("raw_barriers", "raw_communes", "raw_commune_ways", "raw_countries")

#: Relation types whose relations can make rows (areas, boundaries, turn restrictions).
ROW_RELATION_TYPES = frozenset({"multipolygon", "boundary", "restriction"})


def relation_makes_rows(tags: dict[str, str]) -> bool:
    """Whether a relation with ``tags`` can make rows or change those of its member ways."""
    return tags.get("type") in ROW_RELATION_TYPES or "boundary" in tags


#: Admin levels kept as commune candidates besides those of the settings: ``--admin-level``
#: can ask for them (départements and Kreise at 6 to quartiers at 10).
LOCAL_LEVELS = frozenset(range(6, 11))

#: Tags that tell which country a commune belongs to.
COUNTRY_HINTS: tuple[tuple[str, str], ...] = (
    ("ref:INSEE", "FR"),
    ("de:amtlicher_gemeindeschluessel", "DE"),
    ("de:regionalschluessel", "DE"),
    ("swisstopo:BFS_NUMMER", "CH"),
    ("ref:bfs_Gemeindenummer", "CH"),
    ("ref:INS", "BE"),
    ("ref:NIS", "BE"),
    ("ref:at:gkz", "AT"),
)


#: The only keys a node can make a row with: the point rules' keys and the barrier keys.
#: Other nodes are dropped by libosmium before they reach Python.
NODE_KEYS = mapping.NODE_KEYS | BARRIER_KEYS


def tag_dict(tags: osmium.osm.TagList) -> dict[str, str]:
    """An object's tags as a plain dict (the rules read each key several times)."""
    data = getattr(tags, "_pyosmium_data", None)
    if data is None:
        return {tag.k: tag.v for tag in tags}
    # Iterating a TagList ends on a translated C++ exception, costly once per object;
    # fetching exactly tags_size() tags never hits the end.
    following = data.tags_next
    position = data.tags_begin()
    return dict([following(position) for _ in range(data.tags_size())])


def node_refs(way: osmium.osm.Way) -> list[int]:
    """The ids of ``way``'s nodes."""
    return [node.ref for node in way.nodes]


def layer_raw_columns(layer: str) -> list[str]:
    """Columns of ``raw_<layer>``: the system columns and the layer's attributes."""
    return [*SYSTEM_RAW_COLUMNS, *schema.LAYER_BY_NAME[layer].column_names]


def create_raw_tables(cursor: psycopg2.extensions.cursor, staging: str) -> None:
    """Create the unlogged tables the pass writes into."""
    for layer in schema.LAYERS:
        columns: list[tuple[str, str]] = [
            ("osm_type", "char(1)"),
            ("osm_id", "bigint"),
            ("geom", "geometry(Geometry, 4326)"),
            ("minzoom", "smallint"),
            ("sort_key", "real"),
            *layer.columns,
        ]
        _create(cursor, staging, RAW_PREFIX + layer.name, columns)
    for table, definition in RAW_TABLES.items():
        _create(cursor, staging, table, definition)


def create_middle_tables(cursor: psycopg2.extensions.cursor, staging: str) -> None:
    """Create the (logged) tables an update needs besides the served ones."""
    for table, definition in MIDDLE_TABLES.items():
        _create(cursor, staging, table, definition, logged=True)


def _create(
    cursor: psycopg2.extensions.cursor,
    staging: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    *,
    logged: bool = False,
) -> None:
    cursor.execute(
        sql.SQL("CREATE {}TABLE {}.{} ({})").format(
            sql.SQL("" if logged else "UNLOGGED "),
            sql.Identifier(staging),
            sql.Identifier(table),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                for name, kind in columns
            ),
        )
    )


#: The libosmium index that keeps node locations on disk for later updates: (id, location)
#: pairs sorted by id, 16 bytes each (uint64 id, int32 x, int32 y in 1e-7 degrees).
NODE_STORE_TYPE = "sparse_file_array"
_NODE_RECORD = 16


def trim_node_store(path: Path) -> None:
    """Cut the unused, pre-allocated tail off a node store written by libosmium.

    libosmium grows the file in large steps and leaves id 0 entries after the sorted ones; a
    reader opening the file takes its size as the number of entries, so the tail must go.
    """
    with path.open("r+b") as stream:
        size = path.stat().st_size
        low, high = 0, size // _NODE_RECORD
        while low < high:  # first record whose id is 0 (ids of real nodes are positive)
            middle = (low + high) // 2
            stream.seek(middle * _NODE_RECORD)
            if int.from_bytes(stream.read(8), "little") == 0:
                high = middle
            else:
                low = middle + 1
        stream.truncate(low * _NODE_RECORD)


#: Warning texts the summary and ``osm.meta`` count (the tests read them too).
CUT_WAYS = "ways with nodes missing from the extract, kept in part"
CUT_ROADS = "roads with nodes missing from the extract, kept in part"
LOST_WAYS = "ways with fewer than two distinct node locations in the extract, skipped"
LOST_ROADS = "roads with fewer than two distinct node locations in the extract, skipped"
LOST_BUILDINGS = (
    "buildings whose area could not be built (nodes missing from the extract, broken rings), "
    "skipped"
)
DUPLICATES = "objects present twice in the input with different versions, the first kept"


class UnsortedInput(Exception):
    """The input is not ordered nodes, ways, relations, each by id."""


def present_runs(way: osmium.osm.Way) -> list[tuple[list[int], list[tuple[float, float]]]]:
    """The runs of consecutive nodes of ``way`` that have a location, as (ids, lon/lat points).

    Only runs with two distinct locations or more make a line; a cut road keeps each of them.
    """
    runs: list[tuple[list[int], list[tuple[float, float]]]] = []
    refs: list[int] = []
    points: list[tuple[float, float]] = []
    for node in way.nodes:
        location = node.location
        if location.valid():
            refs.append(node.ref)
            points.append((location.lon, location.lat))
            continue
        if len(set(points)) > 1:
            runs.append((refs, points))
        refs, points = [], []
    if len(set(points)) > 1:
        runs.append((refs, points))
    return runs


def line_wkb(points: Sequence[tuple[float, float]], *, unique: bool = True) -> str:
    """Hex WKB of a line string (as ``WKBFactory`` writes it); ``unique`` drops repeated points."""
    if unique:
        points = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    flat = [value for point in points for value in point]
    return "0102000000" + struct.pack(f"<I{len(flat)}d", len(points), *flat).hex().upper()


class RelationScan:
    """First-pass handler: remembers which ways belong to which boundary relations."""

    def __init__(self, commune_levels: frozenset[int] = LOCAL_LEVELS) -> None:
        self.commune_levels = commune_levels
        #: way id -> lowest admin_level (2 or 4) of the boundary relations it is a member of.
        self.boundary_ways: dict[int, int] = {}
        self.disputed_ways: set[int] = set()
        #: commune relation id -> its tags; way id -> commune relation ids.
        self.communes: dict[int, dict[str, str]] = {}
        self.commune_ways: dict[int, list[int]] = {}
        self.area_relations: set[int] = set()

    def relation(self, rel: osmium.osm.Relation) -> None:
        """Note a relation's boundary memberships (never filters anything out)."""
        tags = rel.tags
        kind = tags.get("type")
        if kind in ("multipolygon", "boundary") and len(tags) > 1:
            self.area_relations.add(rel.id)
        boundary = tags.get("boundary")
        if boundary == "disputed":
            self.disputed_ways.update(m.ref for m in rel.members if m.type == "w")
            return
        level = mapping.admin_level(tags)
        if level is None:
            return
        if level in mapping.BOUNDARY_LEVELS:
            for member in rel.members:
                if member.type == "w":
                    known = self.boundary_ways.get(member.ref)
                    if known is None or level < known:
                        self.boundary_ways[member.ref] = level
        if level in self.commune_levels and kind in ("multipolygon", "boundary"):
            self.communes[rel.id] = {t.k: t.v for t in tags}
            for member in rel.members:
                if member.type == "w":
                    self.commune_ways.setdefault(member.ref, []).append(rel.id)


class _BoundaryWays(osmium.SimpleHandler):
    """Gets the ways the key filter dropped: those of boundary relations go to the loader."""

    def __init__(self, loader: Loader) -> None:
        super().__init__()
        self.loader = loader
        self.last_id = 0

    def way(self, way: osmium.osm.Way) -> None:
        """Hand the way on when a boundary or commune relation has it as a member."""
        scan = self.loader.scan
        way_id = way.id
        if way_id == self.last_id:
            self.loader.warnings[DUPLICATES] += 1
            return
        self.last_id = way_id
        if way_id in scan.boundary_ways or way_id in scan.commune_ways:
            self.loader.way(way)
        else:
            tags = way.tags
            if "building" in tags and way.is_closed() and tags.get("area") != "no":
                # Compared with the building areas made from ways: the difference is reported.
                self.loader.building_ways += 1

    def relation(self, rel: osmium.osm.Relation) -> None:
        """Keep the relations the restriction filter dropped that can make rows."""
        self.loader.middle_relation(rel, tag_dict(rel.tags))


class Progress:
    """Objects/s on stderr, at most once every two seconds."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.start = time.monotonic()
        self.last = self.start
        self.count = 0

    def tick(self, count: int) -> None:
        """Called every few thousand objects."""
        self.count = count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= 2.0:
            self.last = now
            rate = count / max(now - self.start, 1e-6)
            print(
                f"\r{self.label}: {count:,} objects, {rate:,.0f} objects/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def done(self) -> None:
        """End the progress line."""
        if self.enabled:
            elapsed = time.monotonic() - self.start
            rate = self.count / max(elapsed, 1e-6)
            print(
                f"\r{self.label}: {self.count:,} objects in {elapsed:.1f}s ({rate:,.0f} objects/s)",
                file=sys.stderr,
                flush=True,
            )


class Loader:
    """Maps every object of one (merged) OSM file to rows of the raw staging tables."""

    def __init__(
        self,
        cursor: psycopg2.extensions.cursor,
        staging: str,
        commune_levels: frozenset[int] = LOCAL_LEVELS,
        *,
        middle: bool = False,
    ) -> None:
        self.cursor = cursor
        self.staging = staging
        self.factory = osmium.geom.WKBFactory()
        self.warnings: Counter[str] = Counter()
        self.sender = CopySender(cursor)
        self.layers = {
            layer.name: CopyBuffer(
                self.sender, staging, RAW_PREFIX + layer.name, layer_raw_columns(layer.name)
            )
            for layer in schema.LAYERS
        }
        self.columns = {
            layer: list(schema.LAYER_BY_NAME[layer].column_names) for layer in self.layers
        }
        self.raw = {
            table: CopyBuffer(self.sender, staging, table, [name for name, _ in columns])
            for table, columns in RAW_TABLES.items()
        }
        # mid_ways is copied by a process of its own (middleways.py); mid_nodes by updates.
        self.middle = {
            table: CopyBuffer(self.sender, staging, table, [name for name, _ in columns])
            for table, columns in MIDDLE_TABLES.items()
            if middle and table == "mid_relations"
        }
        self.scan = RelationScan(LOCAL_LEVELS | commune_levels)
        self.areas_built: set[int] = set()
        self.communes_built: set[int] = set()
        #: Closed building ways read, and the building areas the assembler made of them.
        self.building_ways = 0
        self.building_areas = 0
        self.last_way_area = 0

    def _emit(self, osm_type: str, osm_id: int, geom: str, features: list[Feature]) -> None:
        # The hex WKB needs no COPY escaping: the row head is formatted once for all features.
        head = f"{osm_type}\t{osm_id}\t{geom}"
        for feature in features:
            attrs = feature.attrs
            sort_key = feature.sort_key
            values = [attrs.get(c) for c in self.columns[feature.layer]]
            cells = [
                head,
                str(feature.minzoom),
                NULL if sort_key is None else str(sort_key),
                *[NULL if v is None else copy_value(v) for v in values],
            ]
            self.layers[feature.layer].add_line("\t".join(cells) + "\n")

    def run(self, path: Path, *, progress: bool = False, node_store: Path | None = None) -> None:
        """Read ``path`` (nodes, ways, relations and the areas assembled from them).

        With ``node_store``, the location of every node is kept in that file, mapped by libosmium
        (see ``trim_node_store``); otherwise in memory.
        """
        # Objects no rule can use are dropped by libosmium before they reach Python. Boundary
        # ways may carry no tag at all: those come back through the handler for filtered ones.
        useful_nodes = osmium.filter.KeyFilter(*sorted(NODE_KEYS))
        useful_nodes.enable_for(osmium.osm.NODE)
        useful_ways = osmium.filter.KeyFilter(*sorted(mapping.LINE_KEYS))
        useful_ways.enable_for(osmium.osm.WAY)
        restrictions = osmium.filter.TagFilter(("type", "restriction"))
        restrictions.enable_for(osmium.osm.RELATION)
        storage = "flex_mem" if node_store is None else f"{NODE_STORE_TYPE},{node_store}"
        processor = (
            osmium.FileProcessor(str(path))
            .with_locations(storage)
            .with_areas(self.scan)
            .with_filter(useful_nodes)
            .with_filter(useful_ways)
            .with_filter(restrictions)
            .handler_for_filtered(_BoundaryWays(self))
        )
        meter = Progress(progress, f"reading {path.name}")
        try:
            self._read(processor, meter)
        except BaseException:
            self.sender.close_quietly()
            raise
        finally:
            # Unmaps the node store so its file can be trimmed.
            del processor
        if node_store is not None:
            trim_node_store(node_store)
        self.finish()

    def _read(self, processor: osmium.FileProcessor, meter: Progress) -> None:
        count = 0
        handlers: dict[type, Callable[[Any], None]] = {
            osmium.osm.Node: self.node,
            osmium.osm.Way: self.way,
            osmium.osm.Area: self.area,
            osmium.osm.Relation: self.relation,
        }
        # Sorted input comes as nodes, ways, relations, each by id; merged extracts may repeat
        # an object (another version of it) right after itself.
        rank = {osmium.osm.Node: 0, osmium.osm.Way: 1, osmium.osm.Relation: 2}
        last_rank, last_id = 0, -(2**63)
        for obj in processor:
            count += 1
            if count & 0xFFF == 0:
                meter.tick(count)
            kind = type(obj)
            order = rank.get(kind)
            if order is not None:
                obj_id = obj.id
                if order == last_rank:
                    if obj_id == last_id:
                        self.warnings[DUPLICATES] += 1
                        continue
                    # Negative ids (files edited in JOSM) have an order of their own.
                    if 0 < obj_id < last_id:
                        raise UnsortedInput(f"{kind.__name__.lower()} {obj_id} after {last_id}")
                elif order < last_rank:
                    raise UnsortedInput(f"{kind.__name__.lower()} {obj_id} after the later types")
                else:
                    last_rank = order
                last_id = obj_id
            handler = handlers.get(kind)
            if handler is not None:
                handler(obj)
        meter.tick(count)
        meter.done()

    def node(self, node: osmium.osm.Node) -> None:
        """Points: POIs, places, stops, addresses, motorway exits; routing barrier candidates."""
        tags = tag_dict(node.tags)
        features = mapping.node_features(tags)
        if features:
            try:
                geom = self.factory.create_point(node)
            except (osmium.InvalidLocationError, RuntimeError):
                self.warnings["nodes without a valid location"] += 1
                return
            self._emit("n", node.id, geom, features)
        if not BARRIER_KEYS.isdisjoint(tags):
            self.raw["raw_barriers"].add((node.id, _json(tags)))

    def middle_relation(self, rel: osmium.osm.Relation, tags: dict[str, str]) -> None:
        """Keep a relation that can make rows, with its members, for updates."""
        buffer = self.middle.get("mid_relations")
        if buffer is None or not relation_makes_rows(tags):
            return
        members = [[m.type, m.ref, m.role] for m in rel.members]
        ways = ",".join([str(ref) for kind, ref, _ in members if kind == "w"])
        buffer.add((rel.id, _json(tags), json.dumps(members, separators=(",", ":")), f"{{{ways}}}"))

    def way(self, way: osmium.osm.Way) -> None:
        """Lines: streets, waterways, boundaries, ...; routing ways and their nodes."""
        tags = tag_dict(way.tags)
        features = mapping.line_features(tags, closed=way.is_closed())
        road = "highway" in tags or tags.get("route") == "ferry"
        way_id = way.id
        level = self.scan.boundary_ways.get(way_id)
        communes = self.scan.commune_ways.get(way_id)
        if "building" in tags and way.is_closed() and tags.get("area") != "no":
            self.building_ways += 1
        if not (features or road or level or communes):
            return
        runs = None
        try:
            geoms = [self.factory.create_linestring(way)]
            # libosmium skips missing nodes at the start of a way (and fails on later ones).
            if _wkb_size(geoms[0]) != len(way.nodes) and not way.nodes[0].location.valid():
                raise osmium.InvalidLocationError("first node missing")
        except (osmium.InvalidLocationError, RuntimeError):
            # A node missing from the extract (a bbox cut), or all nodes at one place.
            runs = present_runs(way)
            if not runs:
                self.warnings[LOST_ROADS if road else LOST_WAYS] += 1
                return
            geoms = [line_wkb(points) for _, points in runs]
            self.warnings[CUT_ROADS if road else CUT_WAYS] += 1
        for geom in geoms:
            self._way_rows(way_id, tags, geom, features, level, communes)
        if road:
            if runs is None:
                self._road(way, tags, geoms[0], node_refs(way))
            else:
                # road_ways has one row per way: the longest run is the one routed on.
                refs, points = max(runs, key=lambda run: len(run[0]))
                self._road_row(way_id, tags, refs, line_wkb(points), points)

    def _way_rows(
        self,
        way_id: int,
        tags: dict[str, str],
        geom: str,
        features: list[Feature],
        level: int | None,
        communes: list[int] | None,
    ) -> None:
        if features:
            self._emit("w", way_id, geom, features)
        if level is not None:
            attrs = {
                "admin_level": level,
                "maritime": tags.get("maritime") == "yes" or tags.get("natural") == "coastline",
                "disputed": tags.get("disputed") == "yes" or way_id in self.scan.disputed_ways,
            }
            self._emit(
                "w",
                way_id,
                geom,
                [Feature("boundaries", mapping.BOUNDARY_LEVELS[level], float(-level), attrs)],
            )
        if communes:
            for relation_id in communes:
                self.raw["raw_commune_ways"].add((relation_id, geom))

    def _road(self, way: osmium.osm.Way, tags: dict[str, str], geom: str, refs: list[int]) -> None:
        # road_nodes pairs the nodes with the points of the line, in SQL.
        points = NULL
        if _wkb_size(geom) != len(refs):
            points = self.factory.create_linestring(way, osmium.geom.ALL)
        self._road_line(way.id, tags, refs, geom, points)

    def _road_row(
        self,
        way_id: int,
        tags: dict[str, str],
        refs: list[int],
        geom: str,
        points: list[tuple[float, float]],
    ) -> None:
        every = NULL if _wkb_size(geom) == len(refs) else line_wkb(points, unique=False)
        self._road_line(way_id, tags, refs, geom, every)

    def _road_line(
        self, way_id: int, tags: dict[str, str], refs: list[int], geom: str, points: str
    ) -> None:
        self.raw["raw_road_ways"].add_line(
            f"{way_id}\t{copy_value(_json(tags))}\t{{{','.join(map(str, refs))}}}\t{geom}"
            f"\t{points}\n"
        )

    def relation(self, rel: osmium.osm.Relation) -> None:
        """Turn restrictions for routing."""
        tags = tag_dict(rel.tags)
        self.middle_relation(rel, tags)
        if tags.get("type") == "restriction":
            members = [{"type": m.type, "ref": m.ref, "role": m.role} for m in rel.members]
            self.raw["raw_restrictions"].add(
                (rel.id, _json(tags), json.dumps(members, separators=(",", ":")))
            )

    def area(self, area: osmium.osm.Area) -> None:
        """Polygons and the points that stand for them; communes and country outlines."""
        tags = tag_dict(area.tags)
        from_way = area.from_way()
        osm_id = area.orig_id()
        if from_way:
            if osm_id == self.last_way_area:
                return  # another version of the way (merged extracts), counted there
            self.last_way_area = osm_id
            if "building" in tags:
                self.building_areas += 1
        elif osm_id in self.areas_built:
            return  # another version of a relation already made (merged extracts)
        features = mapping.area_features(tags, from_way=from_way)
        level = None if from_way else mapping.admin_level(tags)
        commune = not from_way and osm_id in self.scan.communes
        if level in mapping.BOUNDARY_LEVELS and tags.get("name") is not None:
            attrs = {"admin_level": level, **mapping.names(tags)}
            features.append(Feature("boundary_labels", 5, None, attrs))
        if not (features or commune or level == 2):
            if not from_way:
                self.areas_built.add(osm_id)
            return
        try:
            geom = self.factory.create_multipolygon(area)
        except (osmium.InvalidLocationError, RuntimeError):
            # Relations are counted in finish() as not assembled.
            if from_way:
                self.warnings["closed ways with an invalid area geometry"] += 1
            return
        if not from_way:
            self.areas_built.add(osm_id)
        osm_type = "w" if from_way else "r"
        self._emit(osm_type, osm_id, geom, features)
        if level == 2 and tags.get("ISO3166-1") is not None:
            self.raw["raw_countries"].add((osm_id, tags.get("ISO3166-1"), geom))
        if commune:
            self.communes_built.add(osm_id)
            self._commune(osm_id, self.scan.communes[osm_id], geom)

    def _commune(self, osm_id: int, tags: dict[str, str], geom: str | None) -> None:
        country = None
        for key, code in COUNTRY_HINTS:
            if key in tags:
                country = code
                break
        iso = tags.get("ISO3166-2", "")
        if country is None and len(iso) > 2 and iso[2] == "-":
            country = iso[:2]
        self.raw["raw_communes"].add(
            (
                osm_id,
                tags.get("name"),
                tags.get("name:fr"),
                tags.get("name:de"),
                tags.get("name:en"),
                mapping.admin_level(tags),
                country,
                tags.get("ref:INSEE"),
                mapping.parse_int(tags.get("population")),
                geom,
                tags.get("de:place") or tags.get("place"),
            )
        )

    def finish(self) -> None:
        """Communes whose ring could not be closed, warning counts, and the last COPYs."""
        for osm_id, tags in self.scan.communes.items():
            if osm_id not in self.communes_built:
                self._commune(osm_id, tags, None)
        lost_buildings = self.building_ways - self.building_areas
        if lost_buildings > 0:
            self.warnings[LOST_BUILDINGS] += lost_buildings
        broken = len(self.scan.area_relations - self.areas_built)
        if broken:
            self.warnings["multipolygon or boundary relations that could not be assembled"] += (
                broken
            )
        for buffer in [*self.layers.values(), *self.raw.values(), *self.middle.values()]:
            buffer.flush()
        self.sender.close()


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json(tags: dict[str, str]) -> str:
    return _JSON.encode(tags)


def _wkb_size(geom: str) -> int:
    """The number of points of a line string in little-endian hex WKB (-1 otherwise)."""
    if not geom.startswith("0102000000"):
        return -1
    return int.from_bytes(bytes.fromhex(geom[10:18]), "little")

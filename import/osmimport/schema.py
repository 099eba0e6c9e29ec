"""The database contract: schema and table names, and the one definition of every tile layer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from osmimport import mapping

#: The schema that is served. An import builds STAGING_SCHEMA and swaps it in as SCHEMA.
SCHEMA = "osm"
STAGING_SCHEMA = "osm_staging"
RETIRED_SCHEMA = "osm_retired"

#: Key/value facts about the loaded data (data_version, sources, timestamps, bbox).
META_TABLE = "meta"

#: The meta key naming the node location file of the loaded data (imports run by
#: `fondplan import` write one). It lies outside the database, in
#: ``<FONDPLAN_DATA_DIR>/nodes/<database name>/``, and holds the location of every node of the
#: imported extract: libosmium's ``sparse_file_array`` (sorted uint64 id, int32 x, int32 y in
#: 1e-7 degrees; open it with ``osmium.index.create_map("sparse_file_array,<path>")``). An
#: update reads it to rebuild the ways whose nodes moved. Each import writes a new file
#: ``nodes-<data_version>.cache``, which becomes current with the schema swap; older ones go.
NODE_STORE_KEY = "node_locations"

#: Raw network kept for routing (see osmimport/sql/):
#:  road_ways(osm_id bigint PK, tags jsonb, nodes bigint[], geom LineString 3857) - highway=* and
#:      route=ferry ways, every tag kept;
#:  road_nodes(osm_id bigint PK, lon float8, lat float8) - every node of a road way;
#:  barriers(osm_id bigint PK, tags jsonb) - tagged nodes of road ways (barrier, access, ...);
#:  restrictions(osm_id bigint PK, tags jsonb, members jsonb) - type=restriction relations,
#:      members as [{"type": "n|w|r", "ref": id, "role": "from|via|to"}].
ROAD_WAYS_TABLE = "road_ways"
ROAD_NODES_TABLE = "road_nodes"
BARRIERS_TABLE = "barriers"
RESTRICTIONS_TABLE = "restrictions"

#: Routing data built from the raw network before the swap, in the same schema (so it becomes
#: current with the tiles and plans of its import, and replicas have it):
#:  routing_profiles(profile text PK, data_version, built_at, build_seconds, nodes, edges,
#:      bytes, layout jsonb) - per profile, the dtype and shape of each named array;
#:  routing_data(profile, name, chunk, data bytea) - the arrays' bytes, in chunks.
ROUTING_PROFILES_TABLE = "routing_profiles"
ROUTING_DATA_TABLE = "routing_data"

#: Administrative areas usable for town plans (levels 6 to 10 and the configured ones):
#:  communes(osm_id bigint PK (relation id), name, name_fr, name_de, name_en, admin_level int,
#:      country text, insee text, population bigint, complete boolean, geom MultiPolygon 3857,
#:      commune boolean: a commune of its country by the commune settings).
COMMUNES_TABLE = "communes"

#: Layer tables (``osm.<layer>`` and generalised ``osm.<layer>_z<N>``) all have these columns;
#: every other column is a Shortbread attribute and goes into the tile as it is.
GEOM_COLUMN = "geom"
MINZOOM_COLUMN = "minzoom"
SORT_COLUMN = "sort_key"
SYSTEM_COLUMNS = ("osm_type", "osm_id", GEOM_COLUMN, MINZOOM_COLUMN, SORT_COLUMN)

#: Every table gets the OSM identity of its source object so updates can find and replace it.
OSM_TYPE_COLUMN = "osm_type"
OSM_ID_COLUMN = "osm_id"

NAME_COLUMNS = ("name", "name_fr", "name_de", "name_en")
#: The French-first name (``name_fr``, else ``name``), computed by the tile query for every layer
#: with names: a label that needs no ``coalesce`` (QGIS 3.22's style converter drops it).
LABEL_COLUMN = "name_label"

MAX_ZOOM = 14

_NAMES = tuple((name, "text") for name in NAME_COLUMNS)

#: Attribute column types: (column name, PostgreSQL type).
Columns = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Generalisation:
    """How a layer's ``_z<N>`` tables are made: merged lines or simplified polygons."""

    #: Columns grouped on when lines are merged; the others get the value given.
    group_by: tuple[str, ...] = ()
    reset: tuple[tuple[str, Any], ...] = ()
    merge: bool = False


@dataclass(frozen=True)
class Layer:
    """A Shortbread 1.1 vector tile layer: its table, attributes, zooms and generalisation.

    The one definition of a layer. The import creates its tables from ``geometry`` and
    ``columns`` (rows come from the rules of ``mapping``; ``sql/layer_<name>.sql``, when it
    exists, post-processes the table), TileJSON lists its ``columns``, and the tile query reads
    its tables. ``values`` lists, per attribute, every value the import can give it (taken from
    the tag tables of ``mapping``): the values styles and town plans may ask for.
    """

    name: str
    minzoom: int
    geometry: str
    columns: Columns = ()
    values: tuple[tuple[str, frozenset[Any]], ...] = ()
    maxzoom: int = MAX_ZOOM
    description: str = ""
    #: Generalised copies: a table ``<name>_z<N>`` serves the zooms up to N (above the previous
    #: one); zooms above the last N read the full-detail table.
    generalised: tuple[int, ...] = ()
    generalisation: Generalisation = Generalisation()

    @property
    def table(self) -> str:
        """The table holding the layer's features at full detail."""
        return self.name

    @property
    def column_names(self) -> tuple[str, ...]:
        """The attribute column names, in table order."""
        return tuple(name for name, _ in self.columns)

    def values_of(self, column: str) -> frozenset[Any] | None:
        """Every value the import gives ``column``; None when it is not a closed set."""
        return dict(self.values).get(column)

    @property
    def kinds(self) -> frozenset[Any]:
        """The values ``kind`` can take (empty for a layer without ``kind``)."""
        return self.values_of("kind") or frozenset()

    def tables_for_zoom(self, zoom: int) -> list[str]:
        """The tables that can serve ``zoom``, best first: generalised ones covering it, then full.

        A reader takes the first that exists, so data imported without generalised tables
        (``fondplan import --no-generalise``, or before a new level was added) is still served.
        """
        covering = [f"{self.name}_z{limit}" for limit in sorted(self.generalised) if zoom <= limit]
        return [*covering, self.name]

    def table_for_zoom(self, zoom: int) -> str:
        """The table to read at ``zoom``: the first generalised one that covers it, else full."""
        return self.tables_for_zoom(zoom)[0]


def _kinds(values: Iterable[Any]) -> tuple[tuple[str, frozenset[Any]], ...]:
    return (("kind", frozenset(values)),)


_WATER_POLYGON_KINDS = _kinds(kind for kind, _ in mapping.WATER_POLYGONS.values())
_WATER_LINE_KINDS = _kinds(kind for kind, _ in mapping.WATER_LINES.values())
_STREET_POLYGON_KINDS = _kinds(mapping.STREET_POLYGONS)
#: The keys a POI is selected by, in column order (``mapping.POIS`` lists their values).
_POI_KEYS = (
    "amenity", "leisure", "tourism", "shop", "man_made", "historic", "emergency", "highway",
    "office",
)  # fmt: skip
_ADMIN_LEVELS = (("admin_level", frozenset(mapping.BOUNDARY_LEVELS)),)

#: The 26 Shortbread 1.1 layers (plus ``name_fr`` and a few attributes for labels), in drawing
#: order.
LAYERS: tuple[Layer, ...] = (
    Layer("ocean", 0, "MultiPolygon", description="Oceans (empty: the region is landlocked)"),
    Layer(
        "water_polygons",
        4,
        "MultiPolygon",
        (("kind", "text"), ("way_area", "real")),
        _WATER_POLYGON_KINDS,
        description="Inland water bodies and glaciers",
        generalised=(6, 9),
    ),
    Layer(
        "water_polygons_labels",
        4,
        "Point",
        (("kind", "text"), ("way_area", "real"), *_NAMES),
        _WATER_POLYGON_KINDS,
        description="Label points of named water polygons",
    ),
    Layer(
        "water_lines",
        9,
        "LineString",
        (("kind", "text"), ("tunnel", "boolean"), ("bridge", "boolean")),
        _WATER_LINE_KINDS,
        description="Rivers, canals, streams, ditches",
        generalised=(11,),
        generalisation=Generalisation(
            group_by=("kind",), reset=(("tunnel", False), ("bridge", False)), merge=True
        ),
    ),
    Layer(
        "water_lines_labels",
        12,
        "LineString",
        (("kind", "text"), *_NAMES, ("tunnel", "boolean"), ("bridge", "boolean")),
        _WATER_LINE_KINDS,
        description="Named water lines",
    ),
    Layer(
        "dam_polygons",
        12,
        "MultiPolygon",
        (("kind", "text"),),
        _kinds({mapping.DAM_KIND}),
        description="Dams mapped as areas",
    ),
    Layer(
        "dam_lines",
        12,
        "LineString",
        (("kind", "text"),),
        _kinds({mapping.DAM_KIND}),
        description="Dams mapped as lines",
    ),
    Layer(
        "pier_polygons",
        12,
        "MultiPolygon",
        (("kind", "text"),),
        _kinds(mapping.PIER_KINDS),
        description="Piers, breakwaters, groynes (areas)",
    ),
    Layer(
        "pier_lines",
        12,
        "LineString",
        (("kind", "text"),),
        _kinds(mapping.PIER_KINDS),
        description="Piers, breakwaters, groynes (lines)",
    ),
    Layer(
        "boundaries",
        0,
        "LineString",
        (("admin_level", "integer"), ("maritime", "boolean"), ("disputed", "boolean")),
        _ADMIN_LEVELS,
        description="Country and state boundary lines",
        generalised=(6, 9),
        generalisation=Generalisation(group_by=("admin_level", "maritime", "disputed"), merge=True),
    ),
    Layer(
        "boundary_labels",
        2,
        "Point",
        (("admin_level", "integer"), ("way_area", "real"), *_NAMES),
        _ADMIN_LEVELS,
        description="Country and state label points",
    ),
    Layer(
        "place_labels",
        4,
        "Point",
        (("kind", "text"), *_NAMES, ("population", "bigint")),
        _kinds({*mapping.PLACES, *mapping.CAPITAL_KINDS.values()}),
        description="Populated places",
    ),
    Layer(
        "land",
        7,
        "MultiPolygon",
        (("kind", "text"),),
        _kinds(kind for kind, _ in mapping.LAND.values()),
        description="Land use and land cover",
        # z10 apart from z11: the land of a z10 tile is its largest layer, a quarter of its
        # area hidden below z11's size limit.
        generalised=(9, 10, 11, 13),
    ),
    Layer(
        "sites",
        14,
        "MultiPolygon",
        (("kind", "text"),),
        _kinds(mapping.SITES.values()),
        description="Sites such as universities, hospitals, parking",
    ),
    Layer("buildings", 14, "MultiPolygon", (("dummy", "integer"),), description="Buildings"),
    Layer(
        "addresses",
        14,
        "Point",
        (("housename", "text"), ("housenumber", "text")),
        description="House numbers",
    ),
    Layer(
        "streets",
        5,
        "LineString",
        (
            ("kind", "text"),
            ("link", "boolean"),
            ("rail", "boolean"),
            ("tunnel", "boolean"),
            ("bridge", "boolean"),
            ("oneway", "boolean"),
            ("oneway_reverse", "boolean"),
            ("tracktype", "text"),
            ("surface", "text"),
            ("service", "text"),
            ("bicycle", "text"),
            ("horse", "text"),
        ),
        _kinds(kind for kind, _, _ in mapping.STREETS.values()),
        description="Roads, paths, railways",
        generalised=(8, 10),
        generalisation=Generalisation(
            group_by=("kind", "rail"),
            reset=(
                ("link", False),
                ("tunnel", False),
                ("bridge", False),
                ("oneway", False),
                ("oneway_reverse", False),
                ("tracktype", None),
                ("surface", ""),
                ("service", None),
                ("bicycle", ""),
                ("horse", ""),
            ),
            merge=True,
        ),
    ),
    Layer(
        "street_polygons",
        11,
        "MultiPolygon",
        (
            ("kind", "text"),
            ("bridge", "boolean"),
            ("rail", "boolean"),
            ("service", "text"),
            ("surface", "text"),
            ("tunnel", "boolean"),
        ),
        _STREET_POLYGON_KINDS,
        description="Pedestrian areas, service and runway areas",
    ),
    Layer(
        "street_labels",
        10,
        "LineString",
        (
            ("kind", "text"),
            ("ref", "text"),
            ("ref_rows", "integer"),
            ("ref_cols", "integer"),
            *_NAMES,
            ("tunnel", "boolean"),
        ),
        _kinds(mapping.STREET_LABELS_MINZOOM),
        description="Named streets",
    ),
    Layer(
        "streets_polygons_labels",
        14,
        "Point",
        (("kind", "text"), *_NAMES),
        _STREET_POLYGON_KINDS,
        description="Named street areas",
    ),
    Layer(
        "street_labels_points",
        12,
        "Point",
        (("kind", "text"), ("ref", "text"), *_NAMES),
        _kinds({mapping.JUNCTION_KIND}),
        description="Road reference numbers as points",
    ),
    Layer(
        "bridges",
        12,
        "MultiPolygon",
        (("kind", "text"),),
        _kinds({mapping.BRIDGE_KIND}),
        description="Bridge areas",
    ),
    Layer(
        "aerialways",
        12,
        "LineString",
        (("kind", "text"),),
        _kinds(mapping.AERIALWAYS.values()),
        description="Cable cars and lifts",
    ),
    Layer(
        "ferries",
        10,
        "LineString",
        (("kind", "text"), *_NAMES),
        _kinds({mapping.FERRY_KIND}),
        description="Ferry routes",
    ),
    Layer(
        "public_transport",
        11,
        "Point",
        (("kind", "text"), *_NAMES, ("iata", "text")),
        _kinds(kind for kind, _ in mapping.PUBLIC_TRANSPORT.values()),
        description="Stations, stops, aerodromes",
    ),
    Layer(
        "pois",
        14,
        "Point",
        (
            *((key, "text") for key in _POI_KEYS),
            *_NAMES,
            ("housename", "text"),
            ("housenumber", "text"),
            *((column, "text") for column in mapping.POI_EXTRA_TEXT),
            *((column, "boolean") for column in mapping.POI_EXTRA_BOOL),
        ),
        tuple((key, frozenset(values)) for key, values in mapping.POIS.items()),
        description="Points of interest",
    ),
)

LAYER_BY_NAME = {layer.name: layer for layer in LAYERS}

"""The database contract: schema, table and layer names every fondplan package reads."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Layer:
    """A Shortbread 1.1 vector tile layer and the zooms at which it has features."""

    name: str
    minzoom: int
    maxzoom: int = MAX_ZOOM
    description: str = ""
    #: Generalised copies: a table ``<name>_z<N>`` serves the zooms up to N (above the previous
    #: one); zooms above the last N read the full-detail table.
    generalised: tuple[int, ...] = ()

    @property
    def table(self) -> str:
        """The table holding the layer's features at full detail."""
        return self.name

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


#: The 26 Shortbread 1.1 layers, in drawing order.
LAYERS: tuple[Layer, ...] = (
    Layer("ocean", 0, description="Oceans (empty: the region is landlocked)"),
    Layer("water_polygons", 4, description="Inland water bodies and glaciers", generalised=(6, 9)),
    Layer("water_polygons_labels", 4, description="Label points of named water polygons"),
    Layer("water_lines", 9, description="Rivers, canals, streams, ditches", generalised=(11,)),
    Layer("water_lines_labels", 12, description="Named water lines"),
    Layer("dam_polygons", 12, description="Dams mapped as areas"),
    Layer("dam_lines", 12, description="Dams mapped as lines"),
    Layer("pier_polygons", 12, description="Piers, breakwaters, groynes (areas)"),
    Layer("pier_lines", 12, description="Piers, breakwaters, groynes (lines)"),
    Layer("boundaries", 0, description="Country and state boundary lines", generalised=(6, 9)),
    Layer("boundary_labels", 2, description="Country and state label points"),
    Layer("place_labels", 4, description="Populated places"),
    Layer("land", 7, description="Land use and land cover", generalised=(9, 11, 13)),
    Layer("sites", 14, description="Sites such as universities, hospitals, parking"),
    Layer("buildings", 14, description="Buildings"),
    Layer("addresses", 14, description="House numbers"),
    Layer("streets", 5, description="Roads, paths, railways", generalised=(8, 10)),
    Layer("street_polygons", 11, description="Pedestrian areas, service and runway areas"),
    Layer("street_labels", 10, description="Named streets"),
    Layer("streets_polygons_labels", 14, description="Named street areas"),
    Layer("street_labels_points", 12, description="Road reference numbers as points"),
    Layer("bridges", 12, description="Bridge areas"),
    Layer("aerialways", 12, description="Cable cars and lifts"),
    Layer("ferries", 10, description="Ferry routes"),
    Layer("public_transport", 11, description="Stations, stops, aerodromes"),
    Layer("pois", 14, description="Points of interest"),
)

LAYER_BY_NAME = {layer.name: layer for layer in LAYERS}

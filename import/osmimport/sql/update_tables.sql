-- What an update records in its work schema before it changes anything served:
-- affected: the objects whose rows are made again; changed: the objects of the change files;
-- mid_*: their new middle rows; dirty: the geometries of the rows deleted and added (expiry).
CREATE TABLE {work}.affected (osm_type char(1) NOT NULL, osm_id bigint NOT NULL);
CREATE INDEX ON {work}.affected (osm_type, osm_id);
CREATE TABLE {work}.changed (osm_type char(1) NOT NULL, osm_id bigint NOT NULL);
CREATE TABLE {work}.mid_ways (id bigint, nodes bigint[], tags jsonb);
CREATE TABLE {work}.mid_relations (id bigint, tags jsonb, members jsonb, way_ids bigint[]);
CREATE TABLE {work}.mid_nodes (id bigint, lon float8, lat float8);
CREATE TABLE {work}.dirty (geom geometry, minzoom smallint, maxzoom smallint);

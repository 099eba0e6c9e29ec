-- What an update reads, indexed (search_path: the staging schema, then public).
-- A changed node finds its ways, a changed way its relations; kept raw tables by object.
CREATE INDEX ON mid_ways (id);
CREATE INDEX ON mid_ways USING gin (nodes);
CREATE INDEX ON mid_relations (id);
CREATE INDEX ON mid_relations USING gin (way_ids);
ALTER TABLE raw_barriers SET LOGGED;
ALTER TABLE raw_communes SET LOGGED;
ALTER TABLE raw_commune_ways SET LOGGED;
ALTER TABLE raw_countries SET LOGGED;
CREATE INDEX ON raw_barriers (osm_id);
CREATE INDEX ON raw_communes (osm_id);
CREATE INDEX ON raw_commune_ways (relation_id);
CREATE INDEX ON raw_countries (osm_id);

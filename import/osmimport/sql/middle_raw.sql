-- The raw tables an update reads, kept and indexed by object (search_path: the staging schema,
-- then public). Run once every build job is done: the network and communes jobs read them.
ALTER TABLE raw_barriers SET LOGGED;
ALTER TABLE raw_communes SET LOGGED;
ALTER TABLE raw_commune_ways SET LOGGED;
ALTER TABLE raw_countries SET LOGGED;
CREATE INDEX ON raw_barriers (osm_id);
CREATE INDEX ON raw_communes (osm_id);
CREATE INDEX ON raw_commune_ways (relation_id);
CREATE INDEX ON raw_countries (osm_id);

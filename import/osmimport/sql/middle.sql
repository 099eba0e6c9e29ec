-- What an update reads, indexed (search_path: the staging schema, then public).
-- A changed node finds its ways, a changed way its relations.
CREATE INDEX ON mid_ways (id);
CREATE INDEX ON mid_ways USING gin (nodes);
CREATE INDEX ON mid_relations (id);
CREATE INDEX ON mid_relations USING gin (way_ids);

-- What an update reads, indexed (search_path: the staging schema, then public).
-- A changed way finds its relations (a changed node its ways: way_node_index.sql).
CREATE INDEX ON mid_ways (id);
CREATE INDEX ON mid_relations (id);
CREATE INDEX ON mid_relations USING gin (way_ids);

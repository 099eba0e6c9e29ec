-- The staged network, middle and kept raw rows replace the served ones (in the update's
-- one transaction).
DELETE FROM {live}.road_ways w USING {work}.affected a
    WHERE a.osm_type = 'w' AND a.osm_id = w.osm_id;
INSERT INTO {live}.road_ways SELECT * FROM {work}.road_ways;
DELETE FROM {live}.road_nodes n USING {work}.road_node_candidates c WHERE c.osm_id = n.osm_id;
INSERT INTO {live}.road_nodes SELECT * FROM {work}.road_nodes_final;
DELETE FROM {live}.barriers b USING {work}.road_node_candidates c WHERE c.osm_id = b.osm_id;
INSERT INTO {live}.barriers SELECT * FROM {work}.barriers_final;
DELETE FROM {live}.restrictions r USING {work}.affected a
    WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id;
INSERT INTO {live}.restrictions SELECT * FROM {work}.restrictions;

DELETE FROM {live}.mid_ways m USING {work}.changed c WHERE c.osm_type = 'w' AND c.osm_id = m.id;
INSERT INTO {live}.mid_ways (id, nodes, tags) SELECT id, nodes, tags FROM {work}.mid_ways;
DELETE FROM {live}.mid_relations m USING {work}.changed c
    WHERE c.osm_type = 'r' AND c.osm_id = m.id;
INSERT INTO {live}.mid_relations (id, tags, members, way_ids)
    SELECT id, tags, members, way_ids FROM {work}.mid_relations;
INSERT INTO {live}.mid_nodes (id, lon, lat) SELECT id, lon, lat FROM {work}.mid_nodes
    ON CONFLICT (id) DO UPDATE SET lon = EXCLUDED.lon, lat = EXCLUDED.lat;

DELETE FROM {live}.raw_barriers b USING {work}.affected a
    WHERE a.osm_type = 'n' AND a.osm_id = b.osm_id;
INSERT INTO {live}.raw_barriers SELECT * FROM {work}.raw_barriers;
DELETE FROM {live}.raw_communes c USING {work}.affected a
    WHERE a.osm_type = 'r' AND a.osm_id = c.osm_id;
INSERT INTO {live}.raw_communes SELECT * FROM {work}.raw_communes;
DELETE FROM {live}.raw_countries c USING {work}.affected a
    WHERE a.osm_type = 'r' AND a.osm_id = c.osm_id;
INSERT INTO {live}.raw_countries SELECT * FROM {work}.raw_countries;
DELETE FROM {live}.raw_commune_ways c USING {work}.affected a
    WHERE a.osm_type = 'r' AND a.osm_id = c.relation_id;
INSERT INTO {live}.raw_commune_ways SELECT * FROM {work}.raw_commune_ways;

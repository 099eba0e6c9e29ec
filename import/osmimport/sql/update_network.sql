-- The routing network after the update, without touching the served one: the nodes whose
-- road_nodes/barriers rows may change, their rows after the update, and views of the served
-- tables with the update applied (the routing build reads those).
CREATE TABLE {work}.road_node_candidates AS
    SELECT DISTINCT unnest(w.nodes) AS osm_id FROM {live}.road_ways w
    WHERE EXISTS (SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'w' AND a.osm_id = w.osm_id)
    UNION SELECT osm_id FROM {work}.affected WHERE osm_type = 'n'
    UNION SELECT osm_id FROM {work}.road_nodes;
CREATE INDEX ON {work}.road_node_candidates (osm_id);
ANALYZE {work}.road_node_candidates;

-- A candidate stays when a new road way has it, or a road way the update leaves has it.
CREATE TABLE {work}.road_nodes_final AS
    SELECT osm_id, lon, lat FROM {work}.road_nodes
    UNION ALL
    SELECT n.osm_id, n.lon, n.lat
    FROM {live}.road_nodes n JOIN {work}.road_node_candidates c USING (osm_id)
    WHERE NOT EXISTS (SELECT 1 FROM {work}.road_nodes r WHERE r.osm_id = n.osm_id)
      AND EXISTS (
          SELECT 1 FROM {live}.mid_ways m JOIN {live}.road_ways w ON w.osm_id = m.id
          WHERE m.nodes @> ARRAY[n.osm_id] AND w.nodes @> ARRAY[n.osm_id]
            AND NOT EXISTS (
                SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'w' AND a.osm_id = m.id));
CREATE INDEX ON {work}.road_nodes_final (osm_id);
ANALYZE {work}.road_nodes_final;

-- Barrier tags: the new ones of changed nodes, the kept ones of the others.
CREATE TABLE {work}.barriers_final AS
    SELECT b.osm_id, b.tags FROM (
        SELECT osm_id, tags FROM {work}.raw_barriers
        UNION ALL
        SELECT r.osm_id, r.tags
        FROM {live}.raw_barriers r JOIN {work}.road_node_candidates c USING (osm_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'n' AND a.osm_id = r.osm_id)
    ) b
    WHERE EXISTS (SELECT 1 FROM {work}.road_nodes_final f WHERE f.osm_id = b.osm_id);

CREATE VIEW {net}.road_ways AS
    SELECT * FROM {live}.road_ways w WHERE NOT EXISTS (
        SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'w' AND a.osm_id = w.osm_id)
    UNION ALL SELECT * FROM {work}.road_ways;
CREATE VIEW {net}.road_nodes AS
    SELECT * FROM {live}.road_nodes n WHERE NOT EXISTS (
        SELECT 1 FROM {work}.road_node_candidates c WHERE c.osm_id = n.osm_id)
    UNION ALL SELECT * FROM {work}.road_nodes_final;
CREATE VIEW {net}.barriers AS
    SELECT * FROM {live}.barriers b WHERE NOT EXISTS (
        SELECT 1 FROM {work}.road_node_candidates c WHERE c.osm_id = b.osm_id)
    UNION ALL SELECT * FROM {work}.barriers_final;
CREATE VIEW {net}.restrictions AS
    SELECT * FROM {live}.restrictions r WHERE NOT EXISTS (
        SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id)
    UNION ALL SELECT * FROM {work}.restrictions;

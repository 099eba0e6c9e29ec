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
-- The candidates no new road way has are found first, then their served rows one by one:
-- few, where the served table is big.
CREATE TABLE {work}.road_nodes_final AS
    WITH others AS MATERIALIZED (
        SELECT c.osm_id FROM {work}.road_node_candidates c
        WHERE NOT EXISTS (SELECT 1 FROM {work}.road_nodes r WHERE r.osm_id = c.osm_id)
    )
    SELECT osm_id, lon, lat FROM {work}.road_nodes
    UNION ALL
    SELECT n.osm_id, n.lon, n.lat
    FROM others c CROSS JOIN LATERAL (
        SELECT * FROM {live}.road_nodes n WHERE n.osm_id = c.osm_id OFFSET 0) n
    WHERE EXISTS (
          SELECT 1 FROM {live}.mid_ways m JOIN {live}.road_ways w ON w.osm_id = m.id
          WHERE {live}.node_buckets(m.nodes) @> {live}.node_buckets(ARRAY[n.osm_id])
            AND m.nodes @> ARRAY[n.osm_id] AND w.nodes @> ARRAY[n.osm_id]
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

-- What the routing build needs to know to keep a profile's data: the tags of every road way
-- whose row changes (before and after), of every road way holding a node whose location or
-- barrier changes, and of every restriction that changes (kind 'w' or 'r').
CREATE TABLE {net}.changed_roads AS
    WITH ways_diff AS (
        (SELECT osm_id, tags, nodes FROM {live}.road_ways w
         WHERE EXISTS (SELECT 1 FROM {work}.affected a
                       WHERE a.osm_type = 'w' AND a.osm_id = w.osm_id)
         EXCEPT SELECT osm_id, tags, nodes FROM {work}.road_ways)
        UNION ALL
        (SELECT osm_id, tags, nodes FROM {work}.road_ways
         EXCEPT SELECT osm_id, tags, nodes FROM {live}.road_ways w
         WHERE EXISTS (SELECT 1 FROM {work}.affected a
                       WHERE a.osm_type = 'w' AND a.osm_id = w.osm_id))
    ), nodes_diff AS (
        (SELECT n.osm_id, n.lon, n.lat FROM {live}.road_nodes n
         JOIN {work}.road_node_candidates c USING (osm_id)
         EXCEPT SELECT osm_id, lon, lat FROM {work}.road_nodes_final)
        UNION
        (SELECT osm_id, lon, lat FROM {work}.road_nodes_final
         EXCEPT SELECT n.osm_id, n.lon, n.lat FROM {live}.road_nodes n
         JOIN {work}.road_node_candidates c USING (osm_id))
        UNION
        (SELECT b.osm_id, NULL::float8, NULL::float8 FROM (
            (SELECT b.osm_id, b.tags FROM {live}.barriers b
             JOIN {work}.road_node_candidates c USING (osm_id)
             EXCEPT SELECT osm_id, tags FROM {work}.barriers_final)
            UNION ALL
            (SELECT osm_id, tags FROM {work}.barriers_final
             EXCEPT SELECT b.osm_id, b.tags FROM {live}.barriers b
             JOIN {work}.road_node_candidates c USING (osm_id))) b)
    ), restrictions_diff AS (
        (SELECT osm_id, tags, members FROM {live}.restrictions r
         WHERE EXISTS (SELECT 1 FROM {work}.affected a
                       WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id)
         EXCEPT SELECT osm_id, tags, members FROM {work}.restrictions)
        UNION ALL
        (SELECT osm_id, tags, members FROM {work}.restrictions
         EXCEPT SELECT osm_id, tags, members FROM {live}.restrictions r
         WHERE EXISTS (SELECT 1 FROM {work}.affected a
                       WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id))
    )
    SELECT 'w'::char(1) AS kind, tags FROM ways_diff
    UNION ALL
    -- A node's location or barrier changes only with a way of the update (moved, or joined).
    SELECT 'w', w.tags FROM (
        SELECT tags, nodes FROM {work}.road_ways
        UNION ALL
        SELECT tags, nodes FROM {live}.road_ways l WHERE EXISTS (
            SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'w' AND a.osm_id = l.osm_id)) w
    WHERE w.nodes && (SELECT coalesce(array_agg(osm_id), '{{}}') FROM nodes_diff)
    UNION ALL
    SELECT 'r', tags FROM restrictions_diff;

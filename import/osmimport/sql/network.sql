-- The routing network, from the raw tables (search_path: the staging schema, then public).
CREATE TABLE road_ways AS
    SELECT osm_id, tags, nodes, ST_Transform(geom, 3857)::geometry(LineString, 3857) AS geom
    FROM raw_road_ways;
ALTER TABLE road_ways ADD PRIMARY KEY (osm_id);

-- Node i of a way is point i of its line (of its point list when the line dropped repeated
-- locations); ROWS FROM walks both side by side.
CREATE TABLE road_nodes AS
    SELECT DISTINCT ON (n.osm_id) n.osm_id, ST_X(n.geom) AS lon, ST_Y(n.geom) AS lat
    FROM raw_road_ways w,
        ROWS FROM (unnest(w.nodes), ST_DumpPoints(coalesce(w.points, w.geom))) AS n(osm_id, path, geom)
    ORDER BY n.osm_id;
ALTER TABLE road_nodes ADD PRIMARY KEY (osm_id);

CREATE TABLE barriers AS
    SELECT b.osm_id, b.tags FROM raw_barriers b
    WHERE EXISTS (SELECT 1 FROM road_nodes n WHERE n.osm_id = b.osm_id);
ALTER TABLE barriers ADD PRIMARY KEY (osm_id);

CREATE TABLE restrictions AS SELECT osm_id, tags, members FROM raw_restrictions;
ALTER TABLE restrictions ADD PRIMARY KEY (osm_id);

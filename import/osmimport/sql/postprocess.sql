-- Post-processing of the staging schema (search_path is the staging schema, then public).
-- Runs after the layer tables were built from the raw tables.

-- Minimum zooms and orders that depend on the geometry.
UPDATE water_polygons_labels SET sort_key = -way_area;

UPDATE boundary_labels SET
    sort_key = -way_area,
    minzoom = CASE
        WHEN admin_level = 2 AND way_area >= 2e8 THEN 2  -- way_area is in ha: 1 km2 = 100 ha
        WHEN way_area >= 7e7 THEN 3
        WHEN way_area >= 1e7 THEN 4
        ELSE 5
    END;

-- Rivers and canals appear once they are at least a quarter of a pixel long (256 px tiles).
UPDATE water_lines SET minzoom = GREATEST(9, LEAST(14,
        ceil(log(2.0, (40075016.686 / (1024.0 * GREATEST(ST_Length(geom), 0.01)))::numeric))))
    WHERE kind IN ('river', 'canal');
UPDATE water_lines_labels SET minzoom = GREATEST(12, LEAST(14,
        ceil(log(2.0, (40075016.686 / (1024.0 * GREATEST(ST_Length(geom), 0.01)))::numeric))))
    WHERE kind IN ('river', 'canal');

-- The routing network.
CREATE TABLE road_ways AS
    SELECT osm_id, tags, nodes, ST_Transform(geom, 3857)::geometry(LineString, 3857) AS geom
    FROM raw_road_ways;
ALTER TABLE road_ways ADD PRIMARY KEY (osm_id);

CREATE TABLE road_nodes AS
    SELECT DISTINCT ON (osm_id) osm_id, lon, lat FROM raw_road_nodes ORDER BY osm_id;
ALTER TABLE road_nodes ADD PRIMARY KEY (osm_id);

CREATE TABLE barriers AS
    SELECT b.osm_id, b.tags FROM raw_barriers b
    WHERE EXISTS (SELECT 1 FROM road_nodes n WHERE n.osm_id = b.osm_id);
ALTER TABLE barriers ADD PRIMARY KEY (osm_id);

CREATE TABLE restrictions AS SELECT osm_id, tags, members FROM raw_restrictions;
ALTER TABLE restrictions ADD PRIMARY KEY (osm_id);

-- Communes: the assembled area, or (ring not closed) the hull of the member ways found.
CREATE TABLE communes AS
    WITH hulls AS (
        SELECT relation_id, ST_ConvexHull(ST_Collect(geom)) AS geom
        FROM raw_commune_ways GROUP BY relation_id
    ), shaped AS (
        SELECT c.osm_id, c.name, c.name_fr, c.name_de, c.name_en, c.admin_level, c.country,
               c.insee, c.population, c.geom IS NOT NULL AS complete,
               ST_Multi(ST_CollectionExtract(ST_Transform(COALESCE(c.geom, h.geom), 3857), 3))
                   AS geom
        FROM raw_communes c LEFT JOIN hulls h ON h.relation_id = c.osm_id
    )
    SELECT s.osm_id, s.name, s.name_fr, s.name_de, s.name_en, s.admin_level,
           COALESCE(s.country, (
               SELECT k.code FROM raw_countries k
               WHERE s.geom IS NOT NULL
                 AND ST_Intersects(ST_Transform(k.geom, 3857), ST_PointOnSurface(s.geom))
               ORDER BY k.osm_id LIMIT 1)) AS country,
           s.insee, s.population, s.complete,
           (CASE WHEN ST_IsEmpty(s.geom) THEN NULL ELSE s.geom END)::geometry(MultiPolygon, 3857)
               AS geom
    FROM shaped s;
ALTER TABLE communes ADD PRIMARY KEY (osm_id);

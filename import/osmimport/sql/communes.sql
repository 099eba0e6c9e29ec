-- Communes, from the raw tables (search_path: the staging schema, then public).
-- The assembled area, or (ring not closed) the hull of the member ways found.
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

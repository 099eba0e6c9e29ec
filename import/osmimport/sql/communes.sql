-- Communes, from the raw tables (search_path: the staging schema, then public).
-- The assembled area, or (ring not closed) the hull of the member ways found.
-- Every local administrative area is kept; ``commune`` marks those a town plan is made of by
-- default: %(levels)s maps a country to its levels, the first being its commune level; a further
-- level counts for a complete area with no commune of the first level inside it and not a county
-- (a German kreisfreie Stadt at level 6). Unknown countries use %(default_levels)s.
CREATE TABLE communes AS
    -- Country outlines in EPSG:3857 once, not once per commune looked up in them.
    WITH countries AS MATERIALIZED (
        SELECT osm_id, code, ST_Transform(geom, 3857) AS geom FROM raw_countries
    ), hulls AS (
        SELECT relation_id, ST_ConvexHull(ST_Collect(geom)) AS geom
        FROM raw_commune_ways GROUP BY relation_id
    ), shaped AS (
        SELECT c.osm_id, c.name, c.name_fr, c.name_de, c.name_en, c.admin_level, c.country,
               c.insee, c.population, c.place, c.geom IS NOT NULL AS complete,
               ST_Multi(ST_CollectionExtract(ST_Transform(COALESCE(c.geom, h.geom), 3857), 3))
                   AS geom
        FROM raw_communes c LEFT JOIN hulls h ON h.relation_id = c.osm_id
    ), placed AS (
        SELECT s.osm_id, s.name, s.name_fr, s.name_de, s.name_en, s.admin_level,
               COALESCE(s.country, (
                   SELECT k.code FROM countries k
                   WHERE s.geom IS NOT NULL
                     AND ST_Intersects(k.geom, ST_PointOnSurface(s.geom))
                   ORDER BY k.osm_id LIMIT 1)) AS country,
               s.insee, s.population, s.place, s.complete,
               (CASE WHEN ST_IsEmpty(s.geom) THEN NULL ELSE s.geom END) AS geom
        FROM shaped s
    ), ruled AS (
        SELECT p.*,
               COALESCE(%(levels)s::jsonb -> p.country, %(default_levels)s::jsonb) AS levels
        FROM placed p
    )
    SELECT r.osm_id, r.name, r.name_fr, r.name_de, r.name_en, r.admin_level, r.country,
           r.insee, r.population, r.complete, r.geom::geometry(MultiPolygon, 3857) AS geom,
           (r.admin_level = (r.levels ->> 0)::integer
            OR (r.levels @> to_jsonb(r.admin_level) AND r.complete AND r.geom IS NOT NULL
                AND coalesce(r.place, '') <> 'county'
                AND NOT EXISTS (
                    SELECT 1 FROM ruled i
                    WHERE i.admin_level = (r.levels ->> 0)::integer AND i.geom IS NOT NULL
                      AND i.osm_id <> r.osm_id
                      AND ST_Contains(r.geom, ST_PointOnSurface(i.geom))))) AS commune
    FROM ruled r;
ALTER TABLE communes ADD PRIMARY KEY (osm_id);

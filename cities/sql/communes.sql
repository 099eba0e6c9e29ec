-- Every commune with its extent; the list is small (a region has a few thousand at most).
SELECT osm_id,
       name,
       name_fr,
       insee,
       admin_level,
       country,
       complete,
       ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom),
       ST_Y(ST_Transform(ST_Centroid(geom), 4326))
FROM {communes}
WHERE name IS NOT NULL OR name_fr IS NOT NULL
ORDER BY name

-- Points of interest and public transport stops inside the planned area, with the tags the
-- facility categories are chosen from; the French name first, as the styles label them.
WITH area AS (SELECT ST_GeomFromWKB(%(area)s, 3857) AS geom)
SELECT 'amenity' AS key, p.amenity AS value, COALESCE(NULLIF(p.name_fr, ''), p.name), ST_X(p.geom), ST_Y(p.geom)
FROM {pois} AS p, area WHERE p.amenity = ANY(%(amenity)s) AND ST_Intersects(p.geom, area.geom)
UNION ALL
SELECT 'leisure', p.leisure, COALESCE(NULLIF(p.name_fr, ''), p.name), ST_X(p.geom), ST_Y(p.geom)
FROM {pois} AS p, area WHERE p.leisure = ANY(%(leisure)s) AND ST_Intersects(p.geom, area.geom)
UNION ALL
SELECT 'tourism', p.tourism, COALESCE(NULLIF(p.name_fr, ''), p.name), ST_X(p.geom), ST_Y(p.geom)
FROM {pois} AS p, area WHERE p.tourism = ANY(%(tourism)s) AND ST_Intersects(p.geom, area.geom)
UNION ALL
SELECT 'public_transport', t.kind, COALESCE(NULLIF(t.name_fr, ''), t.name), ST_X(t.geom), ST_Y(t.geom)
FROM {public_transport} AS t, area
WHERE t.kind = ANY(%(public_transport)s) AND ST_Intersects(t.geom, area.geom)

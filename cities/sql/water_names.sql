-- Named water inside the plan's extent (French name first, as the styles label them): lines
-- (rivers, canals, streams) clipped to it, and the areas of lakes and reservoirs with their
-- names (polygon names live on their label points). Rivers' own areas are named by their lines.
WITH extent AS (SELECT ST_GeomFromWKB(%(extent)s, 3857) AS geom)
SELECT 'line' AS shape, COALESCE(NULLIF(l.name_fr, ''), l.name), l.kind,
       ST_AsBinary(ST_Intersection(l.geom, extent.geom))
FROM {water_lines_labels} AS l, extent
WHERE COALESCE(NULLIF(l.name_fr, ''), l.name, '') <> ''
  AND NOT COALESCE(l.tunnel, FALSE)
  AND ST_Intersects(l.geom, extent.geom)
UNION ALL
SELECT 'area', COALESCE(NULLIF(n.name_fr, ''), n.name), n.kind,
       ST_AsBinary(ST_Intersection(p.geom, extent.geom))
FROM {water_polygons_labels} AS n
JOIN {water_polygons} AS p USING (osm_type, osm_id), extent
WHERE COALESCE(NULLIF(n.name_fr, ''), n.name, '') <> ''
  AND n.kind = ANY(%(area_kinds)s)
  AND ST_Intersects(p.geom, extent.geom)

-- Named streets crossing the planned area, clipped to it: ways, then street areas
-- (pedestrian squares) whose names live on their label points.
WITH area AS (SELECT ST_GeomFromWKB(%(area)s, 3857) AS geom)
SELECT s.name, ST_AsBinary(ST_Intersection(s.geom, area.geom))
FROM {street_labels} AS s, area
WHERE s.name IS NOT NULL AND s.name <> ''
  AND NOT (s.kind = ANY(%(excluded_kinds)s))
  AND ST_Intersects(s.geom, area.geom)
UNION ALL
SELECT l.name, ST_AsBinary(ST_Intersection(p.geom, area.geom))
FROM {street_polygons} AS p
JOIN {street_polygon_labels} AS l USING (osm_type, osm_id), area
WHERE l.name IS NOT NULL AND l.name <> ''
  AND NOT (p.kind = ANY(%(excluded_kinds)s))
  AND ST_Intersects(p.geom, area.geom)

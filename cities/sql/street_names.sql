-- Named streets crossing the planned area, clipped to it: ways, then street areas
-- (pedestrian squares) whose names live on their label points. The French name first, then
-- the name, as the styles label them. Car parks are not streets: parking aisles, and service
-- ways named as a car park, are left out.
WITH area AS (SELECT ST_GeomFromWKB(%(area)s, 3857) AS geom)
SELECT COALESCE(NULLIF(s.name_fr, ''), s.name), ST_AsBinary(ST_Intersection(s.geom, area.geom))
FROM {street_labels} AS s
LEFT JOIN {streets} AS w USING (osm_type, osm_id), area
WHERE COALESCE(NULLIF(s.name_fr, ''), s.name, '') <> ''
  AND NOT (s.kind = ANY(%(excluded_kinds)s))
  AND COALESCE(w.service, '') <> 'parking_aisle'
  AND NOT (s.kind = 'service' AND COALESCE(NULLIF(s.name_fr, ''), s.name) ~* %(car_park)s)
  AND ST_Intersects(s.geom, area.geom)
UNION ALL
SELECT COALESCE(NULLIF(l.name_fr, ''), l.name), ST_AsBinary(ST_Intersection(p.geom, area.geom))
FROM {street_polygons} AS p
JOIN {street_polygon_labels} AS l USING (osm_type, osm_id), area
WHERE COALESCE(NULLIF(l.name_fr, ''), l.name, '') <> ''
  AND NOT (p.kind = ANY(%(excluded_kinds)s))
  AND ST_Intersects(p.geom, area.geom)

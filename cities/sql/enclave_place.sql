-- The locality naming a detached part of a commune: a place inside it, else the nearest one
-- within %(within)s map units (French name first, as the styles label them).
SELECT COALESCE(NULLIF(name_fr, ''), name)
FROM {place_labels}
WHERE COALESCE(NULLIF(name_fr, ''), name, '') <> ''
  AND ST_DWithin(geom, ST_GeomFromWKB(%(part)s, 3857), %(within)s)
ORDER BY ST_Intersects(geom, ST_GeomFromWKB(%(part)s, 3857)) DESC,
         ST_Distance(geom, ST_GeomFromWKB(%(part)s, 3857)),
         population DESC NULLS LAST
LIMIT 1

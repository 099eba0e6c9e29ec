-- Named localities inside the planned area, to tell same-name streets apart.
SELECT name, ST_X(geom), ST_Y(geom)
FROM {place_labels}
WHERE name IS NOT NULL AND name <> ''
  AND ST_Intersects(geom, ST_GeomFromWKB(%(area)s, 3857))

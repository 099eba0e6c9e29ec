-- Named localities inside the planned area, to tell same-name streets apart (French name
-- first, as the styles label them).
SELECT COALESCE(NULLIF(name_fr, ''), name), ST_X(geom), ST_Y(geom)
FROM {place_labels}
WHERE COALESCE(NULLIF(name_fr, ''), name, '') <> ''
  AND ST_Intersects(geom, ST_GeomFromWKB(%(area)s, 3857))

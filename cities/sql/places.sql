-- Named localities inside the planned area (French name first, as the styles label them): to
-- tell same-name streets apart, and named on the map by the plan itself.
SELECT COALESCE(NULLIF(name_fr, ''), name), COALESCE(kind, ''), ST_X(geom), ST_Y(geom)
FROM {place_labels}
WHERE COALESCE(NULLIF(name_fr, ''), name, '') <> ''
  AND ST_Intersects(geom, ST_GeomFromWKB(%(area)s, 3857))
ORDER BY population DESC NULLS LAST, 1

-- Geometries of one layer over the rendered box whose kind is one of the given kinds.
SELECT ST_AsBinary(ST_SimplifyPreserveTopology(geom, %(tolerance)s))
FROM {layer}
WHERE geom && ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, 3857)
  AND kind = ANY(%(kinds)s)
ORDER BY sort_key NULLS FIRST

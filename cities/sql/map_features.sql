-- Geometries of one layer over the rendered box, simplified to the pixel size.
SELECT ST_AsBinary(ST_SimplifyPreserveTopology(geom, %(tolerance)s))
FROM {layer}
WHERE geom && ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, 3857)
ORDER BY sort_key NULLS FIRST

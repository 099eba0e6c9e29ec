-- Named streets over the rendered box, longest first (they get their label placed first).
SELECT name, ST_AsBinary(geom)
FROM {street_labels}
WHERE geom && ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, 3857)
  AND name IS NOT NULL AND name <> ''
  AND kind = ANY(%(kinds)s)
ORDER BY ST_Length(geom) DESC

-- Turn restrictions with a member way missing from the roads (cut off by the extract's edge):
-- routing ignores them; the import counts them.
SELECT count(*)
FROM {restrictions} r
WHERE EXISTS (
    SELECT 1 FROM jsonb_array_elements(r.members) m
    WHERE m ->> 'type' = 'w'
      AND NOT EXISTS (SELECT 1 FROM {road_ways} w WHERE w.osm_id = (m ->> 'ref')::bigint)
);

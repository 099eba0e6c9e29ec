-- The communes whose town plan the update changed: those whose own row changed, and those a
-- deleted or added full-detail row lies in.
SELECT osm_id FROM {new}.changed
UNION
SELECT c.osm_id FROM {live}.communes c
WHERE EXISTS (
    SELECT 1 FROM {work}.dirty d
    WHERE d.maxzoom = %(maxzoom)s AND d.geom && c.geom AND ST_Intersects(d.geom, c.geom))
ORDER BY osm_id;

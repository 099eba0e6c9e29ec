-- Relations read only for what they give their member ways (boundary levels, communes) keep
-- their served rows: the rows re-made for them are dropped.
DELETE FROM {work}.raw_restrictions r WHERE NOT EXISTS (
    SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id);
DELETE FROM {work}.raw_communes r WHERE NOT EXISTS (
    SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id);
DELETE FROM {work}.raw_countries r WHERE NOT EXISTS (
    SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'r' AND a.osm_id = r.osm_id);
DELETE FROM {work}.raw_commune_ways r WHERE NOT EXISTS (
    SELECT 1 FROM {work}.affected a WHERE a.osm_type = 'r' AND a.osm_id = r.relation_id);

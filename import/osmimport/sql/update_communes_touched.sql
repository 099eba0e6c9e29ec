-- Whether the update touches what communes are made of (else they are not made again):
-- commune, country or commune-way rows of the affected relations, before or after.
SELECT EXISTS (SELECT 1 FROM {work}.raw_communes)
    OR EXISTS (SELECT 1 FROM {work}.raw_countries)
    OR EXISTS (SELECT 1 FROM {work}.raw_commune_ways)
    OR EXISTS (SELECT 1 FROM {live}.raw_communes c JOIN {work}.affected a
               ON a.osm_type = 'r' AND a.osm_id = c.osm_id)
    OR EXISTS (SELECT 1 FROM {live}.raw_countries c JOIN {work}.affected a
               ON a.osm_type = 'r' AND a.osm_id = c.osm_id)
    OR EXISTS (SELECT 1 FROM {live}.raw_commune_ways c JOIN {work}.affected a
               ON a.osm_type = 'r' AND a.osm_id = c.relation_id);

-- Every commune with its extent; the list is small (a region has a few thousand at most).
-- %(level)s NULL: the communes of the commune settings; else every area of that admin level.
-- Data imported before the ``commune`` column existed has communes only (the rule is TRUE).
SELECT osm_id,
       name,
       name_fr,
       insee,
       admin_level,
       country,
       complete,
       ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom),
       ST_Y(ST_Transform(ST_Centroid(geom), 4326))
FROM {communes}
WHERE (name IS NOT NULL OR name_fr IS NOT NULL)
  AND CASE WHEN %(level)s::integer IS NULL THEN {commune_rule} ELSE admin_level = %(level)s END
ORDER BY name

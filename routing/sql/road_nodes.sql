-- A page of road nodes after osm id %(after)s, packed as big-endian (id, lon, lat) records.
SELECT string_agg(int8send(osm_id) || float8send(coalesce(lon, 'NaN')) || float8send(coalesce(lat, 'NaN')), ''::bytea ORDER BY osm_id),
       max(osm_id)
FROM (SELECT osm_id, lon, lat FROM {nodes} WHERE osm_id > %(after)s ORDER BY osm_id LIMIT %(limit)s) AS page

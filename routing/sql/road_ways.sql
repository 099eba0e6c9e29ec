SELECT osm_id, tags, nodes FROM {ways} ORDER BY osm_id

SELECT osm_id, tags, members FROM {restrictions} ORDER BY osm_id

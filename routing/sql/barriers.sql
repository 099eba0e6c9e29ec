SELECT osm_id, tags FROM {barriers}

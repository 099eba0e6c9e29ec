SELECT osm_id FROM {candidates}

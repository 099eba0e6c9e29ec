SELECT osm_id FROM {affected} WHERE osm_type = 'r'

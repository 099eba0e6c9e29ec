SELECT osm_id, lon, lat FROM {nodes}

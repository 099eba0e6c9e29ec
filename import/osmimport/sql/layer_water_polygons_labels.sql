-- Post-processing of water_polygons_labels (search_path: the staging schema, then public).
-- Larger water bodies are labelled first.
UPDATE water_polygons_labels SET sort_key = -way_area;

-- Post-processing of boundary_labels (search_path: the staging schema, then public).
-- Minimum zooms and orders that depend on the area.
UPDATE boundary_labels SET
    sort_key = -way_area,
    minzoom = CASE
        WHEN admin_level = 2 AND way_area >= 2e8 THEN 2  -- way_area is in ha: 1 km2 = 100 ha
        WHEN way_area >= 7e7 THEN 3
        WHEN way_area >= 1e7 THEN 4
        ELSE 5
    END;

-- Post-processing of water_lines_labels (search_path: the staging schema, then public).
-- Labels of rivers and canals appear once the line is at least a quarter of a pixel long.
UPDATE water_lines_labels SET minzoom = GREATEST(12, LEAST(14,
        ceil(log(2.0, (40075016.686 / (1024.0 * GREATEST(ST_Length(geom), 0.01)))::numeric))))
    WHERE kind IN ('river', 'canal');

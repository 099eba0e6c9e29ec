-- Post-processing of water_lines (search_path: the staging schema, then public).
-- Rivers and canals appear once they are at least a quarter of a pixel long (256 px tiles).
UPDATE water_lines SET minzoom = GREATEST(9, LEAST(14,
        ceil(log(2.0, (40075016.686 / (1024.0 * GREATEST(ST_Length(geom), 0.01)))::numeric))))
    WHERE kind IN ('river', 'canal');

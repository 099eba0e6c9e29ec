-- The tiles whose content may have changed: for every deleted or added row, the tiles of the
-- zooms it is drawn at (minzoom..maxzoom) that its bounding box, grown by the tile buffer
-- (%(buffer)s of a tile), touches.
CREATE TABLE {work}.expired AS
    WITH boxes AS (
        SELECT ST_XMin(b) AS xmin, ST_YMin(b) AS ymin, ST_XMax(b) AS xmax, ST_YMax(b) AS ymax,
               minzoom, maxzoom
        FROM (SELECT Box2D(geom) AS b, minzoom, maxzoom FROM {work}.dirty
              WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom)) d
    ), tiles AS (
        SELECT z, 2 * %(half)s / (2 ^ z) AS size, (2 ^ z)::integer - 1 AS last
        FROM generate_series(0, %(maxzoom)s) AS z
    )
    SELECT DISTINCT t.z, x, y
    FROM boxes b
    JOIN tiles t ON t.z BETWEEN greatest(b.minzoom, 0) AND b.maxzoom
    CROSS JOIN LATERAL generate_series(
        greatest(0, floor((b.xmin + %(half)s) / t.size - %(buffer)s)::integer),
        least(t.last, floor((b.xmax + %(half)s) / t.size + %(buffer)s)::integer)) AS x
    CROSS JOIN LATERAL generate_series(
        greatest(0, floor((%(half)s - b.ymax) / t.size - %(buffer)s)::integer),
        least(t.last, floor((%(half)s - b.ymin) / t.size + %(buffer)s)::integer)) AS y;
SELECT z, x, y FROM {work}.expired ORDER BY z, x, y;

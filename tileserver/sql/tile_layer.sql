(SELECT COALESCE(ST_AsMVT(t, {layer}, {extent}, 'geom'), ''::bytea) FROM (
    SELECT ST_AsMVTGeom(g.{geom}, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {extent}, {buffer}, true)
               AS geom{attributes}
    FROM {schema}.{table} AS g
    WHERE g.{geom} && ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin})
      AND {zoom_filter}
    ORDER BY {order}
) AS t)

-- One vector tile: the data version and every layer's ST_AsMVT concatenated, in one round trip.
SELECT ({version}) AS data_version, {layers} AS mvt

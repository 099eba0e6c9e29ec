SELECT count(*)::text || '-' || coalesce(max(osm_id), 0)::text || '-'
       || coalesce(sum(cardinality(nodes)), 0)::text
FROM {ways}

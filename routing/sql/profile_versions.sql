SELECT profile, data_version, built_at, build_seconds, nodes, edges, bytes
FROM {profiles} ORDER BY profile

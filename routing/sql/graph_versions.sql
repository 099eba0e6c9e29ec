SELECT profile, data_version, built_at, build_seconds, nodes, edges FROM {graphs} ORDER BY profile

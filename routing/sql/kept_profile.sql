SELECT data_version, build_seconds, nodes, edges, bytes, layout FROM {live_profiles}
WHERE profile = %(profile)s

SELECT data_version, build_seconds, nodes, edges, layout FROM {live_profiles}
WHERE profile = %(profile)s

INSERT INTO {profiles} (profile, data_version, build_seconds, nodes, edges, bytes, layout)
VALUES (%(profile)s, %(data_version)s, %(build_seconds)s, %(nodes)s, %(edges)s, %(bytes)s,
        %(layout)s)

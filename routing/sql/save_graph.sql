DELETE FROM {graphs} WHERE profile = %(profile)s;
INSERT INTO {graphs} (profile, data_version, build_seconds, nodes, edges, graph)
VALUES (%(profile)s, %(data_version)s, %(build_seconds)s, %(nodes)s, %(edges)s, %(graph)s);

CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {graphs} (
    profile text NOT NULL,
    data_version text NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now(),
    build_seconds double precision NOT NULL,
    nodes integer NOT NULL,
    edges integer NOT NULL,
    graph bytea NOT NULL,
    PRIMARY KEY (profile, data_version)
);

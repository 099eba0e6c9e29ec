-- The communes whose town plan the update changed: those whose own row changed, and those
-- whose plan area (their bounding box, grown by %(margin)s of its size for what the pages
-- show around it) a deleted or added full-detail row touches. Their plans are of the update's
-- data version from now on; the others' stay of the version they were last changed at.
-- Each commune's plan area and each row's box are made once (not once per pair of them).
CREATE TABLE {work}.plans AS
    WITH areas AS MATERIALIZED (
        SELECT c.osm_id, ST_Expand(ST_Envelope(c.geom), %(margin)s * greatest(
                   ST_XMax(b.box) - ST_XMin(b.box), ST_YMax(b.box) - ST_YMin(b.box))) AS area
        FROM {live}.communes c CROSS JOIN LATERAL (SELECT Box2D(c.geom) AS box) b
    ), rows AS MATERIALIZED (
        SELECT geom FROM {work}.dirty WHERE maxzoom = %(maxzoom)s
    )
    SELECT osm_id FROM {new}.changed
    UNION
    SELECT a.osm_id FROM areas a WHERE EXISTS (SELECT 1 FROM rows d WHERE d.geom && a.area);
CREATE TABLE IF NOT EXISTS {live}.plan_versions (
    osm_id bigint PRIMARY KEY,
    data_version text NOT NULL
);
INSERT INTO {live}.plan_versions (osm_id, data_version)
    SELECT osm_id, %(version)s FROM {work}.plans
    ON CONFLICT (osm_id) DO UPDATE SET data_version = EXCLUDED.data_version;
SELECT osm_id FROM {work}.plans ORDER BY osm_id;

-- The communes made again ({new}.communes) against the served ones: the rows that differ are
-- replaced.
CREATE TABLE {new}.changed AS
    SELECT osm_id FROM (SELECT * FROM {new}.communes EXCEPT SELECT * FROM {live}.communes) a
    UNION
    SELECT osm_id FROM (SELECT * FROM {live}.communes EXCEPT SELECT * FROM {new}.communes) b;
DELETE FROM {live}.communes c USING {new}.changed x WHERE x.osm_id = c.osm_id;
INSERT INTO {live}.communes SELECT n.* FROM {new}.communes n JOIN {new}.changed x USING (osm_id);

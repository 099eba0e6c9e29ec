-- The routing data built (or kept) for the update replaces the served one, profile by
-- profile. Its chunk rows were staged in the served table under the profile's name and
-- %(suffix)s: only the chunks whose bytes changed (a layout lists the digest of every chunk;
-- a kept profile stages only its new meta array). The served rows they replace go, as do
-- those of any array the new layout does not name and any chunk past an array's new end;
-- the staged rows are renamed, their bytes stay where they are. Each statement joins on
-- whole keys (no OR of subqueries run once per served row): the work follows the chunks
-- staged, not all the chunks served.
CREATE TABLE IF NOT EXISTS {live}.routing_profiles (LIKE {net}.routing_profiles INCLUDING ALL);
-- The new layouts' arrays, listed once: a layout lists a digest per chunk, and reading it
-- again for each served row would cost rows times its size.
CREATE TABLE {work}.routing_arrays AS
    SELECT p.profile, a.key AS name, a.value ? 'chunks' AS chunked,
           jsonb_array_length(coalesce(a.value -> 'chunks', '[]')) AS chunks
    FROM {net}.routing_profiles p, jsonb_each(p.layout) a;
-- Served chunks a staged one replaces.
DELETE FROM {live}.routing_data d
    USING {net}.routing_profiles p, {live}.routing_data n
    WHERE n.profile = p.profile || %(suffix)s AND d.profile = p.profile
      AND d.name = n.name AND d.chunk = n.chunk;
-- Served rows of arrays the new layout does not name, or past an array's new end.
DELETE FROM {live}.routing_data d
    WHERE d.profile IN (SELECT profile FROM {net}.routing_profiles)
      AND NOT EXISTS (SELECT 1 FROM {work}.routing_arrays a
                      WHERE a.profile = d.profile AND a.name = d.name
                        AND (NOT a.chunked OR d.chunk < a.chunks));
-- Served rows of an array stored without chunk digests that has staged rows (all replaced).
DELETE FROM {live}.routing_data d
    USING {work}.routing_arrays a
    WHERE a.profile = d.profile AND a.name = d.name AND NOT a.chunked
      AND EXISTS (SELECT 1 FROM {live}.routing_data n
                  WHERE n.profile = d.profile || %(suffix)s AND n.name = d.name);
UPDATE {live}.routing_data d SET profile = p.profile FROM {net}.routing_profiles p
    WHERE d.profile = p.profile || %(suffix)s;
DELETE FROM {live}.routing_profiles l USING {net}.routing_profiles p WHERE l.profile = p.profile;
INSERT INTO {live}.routing_profiles SELECT * FROM {net}.routing_profiles;

-- The routing data built (or kept) for the update replaces the served one, profile by
-- profile. Its chunk rows were staged in the served table under the profile's name and
-- %(suffix)s: only the chunks whose bytes changed (a layout lists the digest of every chunk;
-- a kept profile stages only its new meta array). The served rows they replace go, as do
-- those of any array the new layout does not name and any chunk past an array's new end;
-- the staged rows are renamed, their bytes stay where they are.
CREATE TABLE IF NOT EXISTS {live}.routing_profiles (LIKE {net}.routing_profiles INCLUDING ALL);
-- The new layouts' arrays are listed once: a layout lists a digest per chunk, and reading it
-- again for each served row would cost rows times its size.
WITH arrays AS (
    SELECT p.profile, a.key AS name, a.value ? 'chunks' AS chunked,
           jsonb_array_length(coalesce(a.value -> 'chunks', '[]')) AS chunks
    FROM {net}.routing_profiles p, jsonb_each(p.layout) a
)
DELETE FROM {live}.routing_data d
    WHERE d.profile IN (SELECT profile FROM {net}.routing_profiles)
      AND (NOT EXISTS (SELECT 1 FROM arrays a WHERE a.profile = d.profile AND a.name = d.name)
           OR EXISTS (SELECT 1 FROM arrays a
                      WHERE a.profile = d.profile AND a.name = d.name
                        AND a.chunked AND d.chunk >= a.chunks)
           OR EXISTS (SELECT 1 FROM {live}.routing_data n
                      WHERE n.profile = d.profile || %(suffix)s AND n.name = d.name
                        AND (n.chunk = d.chunk
                             OR EXISTS (SELECT 1 FROM arrays a
                                        WHERE a.profile = d.profile AND a.name = d.name
                                          AND NOT a.chunked))));
UPDATE {live}.routing_data d SET profile = p.profile FROM {net}.routing_profiles p
    WHERE d.profile = p.profile || %(suffix)s;
DELETE FROM {live}.routing_profiles l USING {net}.routing_profiles p WHERE l.profile = p.profile;
INSERT INTO {live}.routing_profiles SELECT * FROM {net}.routing_profiles;

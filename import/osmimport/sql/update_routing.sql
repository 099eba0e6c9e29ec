-- The routing data built (or kept) for the update replaces the served one, profile by
-- profile. Its chunk rows were staged in the served table under the profile's name and
-- %(suffix)s: only the chunks whose bytes changed (a layout lists the digest of every chunk;
-- a kept profile stages only its new meta array). The served rows they replace go, as do
-- those of any array the new layout does not name and any chunk past an array's new end;
-- the staged rows are renamed, their bytes stay where they are.
CREATE TABLE IF NOT EXISTS {live}.routing_profiles (LIKE {net}.routing_profiles INCLUDING ALL);
DELETE FROM {live}.routing_data d USING {net}.routing_profiles p
    WHERE d.profile = p.profile
      AND (NOT p.layout ? d.name
           OR d.chunk >= jsonb_array_length(coalesce(p.layout -> d.name -> 'chunks', '[]'))
              AND p.layout -> d.name ? 'chunks'
           OR EXISTS (SELECT 1 FROM {live}.routing_data n
                      WHERE n.profile = p.profile || %(suffix)s AND n.name = d.name
                        AND (n.chunk = d.chunk OR NOT p.layout -> d.name ? 'chunks')));
UPDATE {live}.routing_data d SET profile = p.profile FROM {net}.routing_profiles p
    WHERE d.profile = p.profile || %(suffix)s;
DELETE FROM {live}.routing_profiles l USING {net}.routing_profiles p WHERE l.profile = p.profile;
INSERT INTO {live}.routing_profiles SELECT * FROM {net}.routing_profiles;

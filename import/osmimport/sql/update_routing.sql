-- The routing data built (or kept) for the update replaces the served one, profile by
-- profile: a kept profile brings only its profile row and its new meta array, a rebuilt one
-- the chunks whose bytes changed (its layout lists the digest of every chunk), so the other
-- rows stay where they are (any array its new layout does not name goes, and any chunk past
-- an array's new end).
CREATE TABLE IF NOT EXISTS {live}.routing_profiles (LIKE {net}.routing_profiles INCLUDING ALL);
CREATE TABLE IF NOT EXISTS {live}.routing_data (LIKE {net}.routing_data INCLUDING ALL);
DELETE FROM {live}.routing_data d USING {net}.routing_profiles p
    WHERE d.profile = p.profile
      AND (NOT p.layout ? d.name
           OR d.chunk >= jsonb_array_length(coalesce(p.layout -> d.name -> 'chunks', '[]'))
              AND p.layout -> d.name ? 'chunks'
           OR EXISTS (SELECT 1 FROM {net}.routing_data n
                      WHERE n.profile = d.profile AND n.name = d.name
                        AND (n.chunk = d.chunk OR NOT p.layout -> d.name ? 'chunks')));
INSERT INTO {live}.routing_data SELECT * FROM {net}.routing_data;
DELETE FROM {live}.routing_profiles l USING {net}.routing_profiles p WHERE l.profile = p.profile;
INSERT INTO {live}.routing_profiles SELECT * FROM {net}.routing_profiles;

-- The routing data rows an unfinished update staged in the served table.
DELETE FROM {live}.routing_data WHERE right(profile, length(%(suffix)s)) = %(suffix)s;

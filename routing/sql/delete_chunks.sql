-- The chunk rows of a profile (its profile row stays).
DELETE FROM {data} WHERE profile = %(profile)s

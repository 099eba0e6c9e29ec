DELETE FROM {data} WHERE profile = %(profile)s;
DELETE FROM {profiles} WHERE profile = %(profile)s;

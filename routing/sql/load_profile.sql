SELECT data_version, layout FROM {profiles} WHERE profile = %(profile)s

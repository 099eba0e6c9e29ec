SELECT graph FROM {graphs} WHERE profile = %(profile)s AND data_version = %(data_version)s

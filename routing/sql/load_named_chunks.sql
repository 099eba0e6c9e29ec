SELECT name, data FROM {data} WHERE profile = %(profile)s AND name = ANY(%(names)s)
ORDER BY name, chunk

INSERT INTO {data} (profile, name, chunk, data) VALUES (%(profile)s, %(name)s, %(chunk)s, %(data)s)

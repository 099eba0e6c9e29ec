COPY (SELECT name, data FROM {data} WHERE profile = %(profile)s ORDER BY name, chunk)
TO STDOUT (FORMAT binary)

COPY {data} (profile, name, chunk, data) FROM STDIN (FORMAT binary)

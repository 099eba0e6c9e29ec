SELECT value FROM {meta} WHERE key = 'data_version'

(SELECT value #>> '{{}}' FROM {schema}.{meta} WHERE key = 'data_version')

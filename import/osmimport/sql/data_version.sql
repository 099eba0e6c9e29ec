-- The data version recorded by the import, as text (NULL when the key is absent).
(SELECT value #>> '{{}}' FROM {schema}.{meta} WHERE key = 'data_version')

-- Every key/value fact about the loaded data.
SELECT key, value #>> '{{}}' FROM {schema}.{meta};

-- Columns of the layer tables of the served schema, in table order.
SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
  AND c.relkind IN ('r', 'v', 'm', 'p')
  AND c.relname = ANY(%(tables)s)
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum;

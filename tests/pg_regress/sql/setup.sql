-- Install the extension and show what it adds.
CREATE EXTENSION pg_tide;
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tide%' ORDER BY 1;
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result
  FROM pg_proc p WHERE p.pronamespace = 'tide'::regnamespace ORDER BY 1;
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'tide.views'::regclass AND attnum > 0 ORDER BY attnum;
SELECT * FROM tide.views;

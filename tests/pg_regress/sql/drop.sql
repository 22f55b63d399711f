-- drop: by tide.drop_view or by plain DROP, nothing of pg_tide's is left.
-- (View ids from here on do not depend on the tests before.)
SELECT setval('tide.catalog_id_seq', 1000) IS NOT NULL AS ids_reset;
CREATE TABLE d (k int, v int);
INSERT INTO d VALUES (1, 1), (2, 2);
CREATE FUNCTION tide_objects() RETURNS TABLE (catalog_rows bigint, state_objects bigint) LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM tide.catalog),
         (SELECT count(*) FROM pg_class WHERE relnamespace = 'tide_state'::regnamespace) $$;
SELECT * FROM tide_objects() \gset before_
SELECT tide.create_view('d1', 'SELECT k, sum(v) FROM d GROUP BY k');
SELECT tide.drop_view('d1');
SELECT to_regclass('d1') IS NULL AS gone, catalog_rows = :before_catalog_rows AS catalog_clean,
       state_objects = :before_state_objects AS state_clean FROM tide_objects();

-- a plain DROP TABLE of the view
SELECT tide.create_view('d2', 'SELECT k FROM d');
DROP TABLE d2;
SELECT catalog_rows = :before_catalog_rows AS catalog_clean, state_objects = :before_state_objects AS state_clean FROM tide_objects();

-- a base table cannot be dropped from under a view without CASCADE
SELECT tide.create_view('d3', 'SELECT k, v FROM d');
DROP TABLE d;
SELECT count(*) FROM d3;
-- a used column cannot be dropped or retyped
ALTER TABLE d DROP COLUMN v;
ALTER TABLE d ALTER COLUMN v TYPE bigint;
-- a rename is followed, also by maintenance
ALTER TABLE d RENAME COLUMN v TO value;
INSERT INTO d VALUES (3, 3);
SELECT tide.verify('d3');
SELECT * FROM d3 ORDER BY k;
SELECT definition FROM tide.views WHERE name = 'd3'::regclass;
-- so is a rename of the view itself
ALTER TABLE d3 RENAME TO d3_renamed;
SELECT name FROM tide.views WHERE name = 'd3_renamed'::regclass;
SELECT tide.refresh('d3_renamed');
-- with CASCADE the view goes too
DROP TABLE d CASCADE;
SELECT to_regclass('d3_renamed') IS NULL AS gone, catalog_rows = :before_catalog_rows AS catalog_clean,
       state_objects = :before_state_objects AS state_clean FROM tide_objects();

-- DROP SCHEMA ... CASCADE
CREATE SCHEMA s;
CREATE TABLE s.b (x int);
SELECT tide.create_view('s.v', 'SELECT x FROM s.b');
DROP SCHEMA s CASCADE;
SELECT catalog_rows = :before_catalog_rows AS catalog_clean, state_objects = :before_state_objects AS state_clean FROM tide_objects();

-- a view over a pg_tide view; dropping the inner one needs CASCADE
CREATE TABLE base (x int);
SELECT tide.create_view('inner_v', 'SELECT x FROM base');
SELECT tide.create_view('outer_v', 'SELECT count(*) FROM inner_v');
-- changes cascade through the inner view to the outer one
INSERT INTO base VALUES (1), (2);
SELECT * FROM outer_v;
SELECT tide.verify('inner_v'), tide.verify('outer_v');
SELECT tide.drop_view('inner_v');
DROP TABLE inner_v CASCADE;
SELECT catalog_rows = :before_catalog_rows AS catalog_clean, state_objects = :before_state_objects AS state_clean FROM tide_objects();

-- capture triggers are removed with the last view over a table
CREATE TABLE cap (x int);
SELECT tide.create_view('cap1', 'SELECT x FROM cap');
SELECT tide.create_view('cap2', 'SELECT count(*) FROM cap');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'cap'::regclass ORDER BY 1;
SELECT tide.drop_view('cap1');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cap'::regclass;
DROP TABLE cap2;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cap'::regclass;
INSERT INTO cap VALUES (1);

-- drop_view of something that is not a pg_tide view
SELECT tide.drop_view('base');
SELECT tide.drop_view('no_such_thing');

-- Bad input: a clear error with a fitting SQLSTATE, and nothing left behind.
CREATE TABLE t (id int, v int, ts timestamptz);
CREATE SEQUENCE seq;
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
CREATE TEMP TABLE tmp (x int);
CREATE FUNCTION debris() RETURNS text LANGUAGE sql AS $$
  SELECT format('catalog=%s state=%s tables=%s triggers=%s',
    (SELECT count(*) FROM tide.catalog),
    (SELECT count(*) FROM pg_class WHERE relnamespace = 'tide_state'::regnamespace),
    (SELECT count(*) FROM pg_class WHERE relname LIKE 'bad%'),
    (SELECT count(*) FROM pg_trigger WHERE tgname = 'tide_guard')) $$;
-- try(): run a statement, report SQLSTATE and message
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  -- (the number of a temporary schema depends on the backend)
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'pg_temp_[0-9]+', 'pg_temp_N');
END $$;
-- a user-defined aggregate over a VOLATILE function
CREATE FUNCTION rand_add(int, int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT coalesce($1, 0) + $2 + (random() * 0)::int';
CREATE AGGREGATE rand_sum(int) (sfunc = rand_add, stype = int);
SELECT debris() AS before \gset

SELECT stmt, try(stmt) FROM (VALUES
  -- unknown table or column
  ($$SELECT tide.create_view('bad1', 'SELECT * FROM nowhere')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT nope FROM t')$$),
  -- a view name that exists
  ($$SELECT tide.create_view('t', 'SELECT id FROM t')$$),
  -- not a single SELECT
  ($$SELECT tide.create_view('bad1', 'DELETE FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'INSERT INTO t VALUES (1)')$$),
  ($$SELECT tide.create_view('bad1', 'CREATE TABLE x (a int)')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT 1; SELECT 2')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id INTO newtab FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t FOR UPDATE')$$),
  -- functions that are not IMMUTABLE
  ($$SELECT tide.create_view('bad1', 'SELECT id, random() FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE ts < now()')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE ts < current_timestamp')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id, current_date FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT nextval(''seq'') FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id, ts::text FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE id IN (SELECT (random() * 10)::int)')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id, clock_timestamp() FROM t')$$),
  -- system columns
  ($$SELECT tide.create_view('bad1', 'SELECT ctid, id FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE xmin::text <> ''''')$$),
  -- sources whose changes cannot be seen
  ($$SELECT tide.create_view('bad1', 'SELECT x FROM mv')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT x FROM tmp')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t TABLESAMPLE SYSTEM (10)')$$),
  -- syntax errors
  ($$SELECT tide.create_view('bad1', 'SELECT id FORM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELEC 1')$$),
  -- NULL or empty arguments
  ($$SELECT tide.create_view(NULL, 'SELECT 1')$$),
  ($$SELECT tide.create_view('bad1', NULL)$$),
  ($$SELECT tide.create_view('', 'SELECT 1')$$),
  ($$SELECT tide.create_view('bad1', '   ')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT 1', NULL)$$),
  ($$SELECT tide.create_view('bad1', 'SELECT 1', 'sometimes')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT x FROM t', 'sometimes')$$),
  -- bad names
  ($$SELECT tide.create_view('a.b.c.d', 'SELECT 1')$$),
  ($$SELECT tide.create_view('"unterminated', 'SELECT 1')$$),
  ($$SELECT tide.create_view('no_schema.bad1', 'SELECT id FROM t')$$),
  -- constructs this version does not maintain
  ($$SELECT tide.create_view('bad1', 'SELECT a.id FROM t a FULL JOIN t b ON a.id < b.v')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE EXISTS (SELECT 1 FROM t t2 WHERE t2.v < t.id AND t2.id > t.v)')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id, (SELECT max(v) FROM t t2 WHERE t2.id < t.id) FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT id, row_number() OVER (PARTITION BY v ORDER BY id) FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT v, (SELECT id FROM t ORDER BY id LIMIT 1) FROM t')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT DISTINCT ON (v) id FROM t')$$),
  -- an aggregate whose support functions are not IMMUTABLE
  ($$SELECT tide.create_view('bad1', 'SELECT v, rand_sum(id) FROM t GROUP BY v')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT v FROM t GROUP BY GROUPING SETS ((v), ())')$$),
  ($$SELECT tide.create_view('bad1', 'WITH c AS (SELECT v FROM t UNION ALL (SELECT id FROM t INTERSECT SELECT v FROM t)) SELECT c.v, x.id FROM c, LATERAL (SELECT t.id FROM t WHERE t.v = c.v LIMIT 1) x')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT t.v, s.n FROM t, LATERAL (SELECT count(*) AS n FROM t t2 WHERE t2.v < t.v) s')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT * FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3)) AS f(a, b)')$$),
  ($$SELECT tide.create_view('bad1', 'SELECT a.id FROM t a FULL JOIN t b ON a.id = b.v OR a.v = b.id')$$),
  -- duplicate output column names
  ($$SELECT tide.create_view('bad1', 'SELECT id, id FROM t')$$),
  -- other functions
  ($$SELECT tide.refresh(NULL)$$),
  ($$SELECT tide.refresh('t')$$),
  ($$SELECT tide.verify('nowhere')$$),
  ($$SELECT tide.drop_view('')$$),
  ($$SELECT * FROM tide.explain(NULL)$$),
  ($$SELECT * FROM tide.explain('SELECT * FROM nowhere')$$)
) AS s(stmt);

SELECT debris() = :'before' AS nothing_left;

-- the build must see every committed write: not in a REPEATABLE READ transaction
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tide.create_view('bad1', 'SELECT id FROM t');
ROLLBACK;

-- PostgreSQL's own message, and the spot in the view's query
SELECT tide.create_view('bad1', 'SELECT id
  FROM t
 WHERE v >> ');
SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE nope = 1');
-- the function is named, with a hint
SELECT tide.create_view('bad1', 'SELECT id FROM t WHERE ts < now()');
-- what is not maintained is named, with the operator
SELECT tide.create_view('bad1', 'SELECT a.id FROM t a FULL JOIN t b ON a.id < b.v');
SELECT debris() = :'before' AS nothing_left;

-- partitions and inheritance: a partition or child read alone, or a parent
-- read with ONLY, is refused (a statement on an ancestor changes its rows
-- but fires only the ancestor's triggers); see partitions.sql for trees
CREATE TABLE parted (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parent_t (k int);
CREATE TABLE child_t () INHERITS (parent_t);
SELECT tide.create_view('bad1', 'SELECT k, v FROM parted_1');
SELECT tide.create_view('bad1', 'SELECT k FROM ONLY parent_t');
SELECT tide.create_view('bad1', 'SELECT k FROM child_t');
SELECT debris() = :'before' AS nothing_left;

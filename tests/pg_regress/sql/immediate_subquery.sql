-- Sub-queries in FROM, CTEs and views used as sources: a select-project-join
-- sub-query is pulled up into the view's join block and maintained with it;
-- any other (one that aggregates, say) is maintained as an internal view.
CREATE SCHEMA immediate_subquery;
SET search_path = immediate_subquery, public;
CREATE TABLE emp (id int, dept int, salary numeric, active boolean);
CREATE TABLE dept (id int, name text);
INSERT INTO emp VALUES (1, 10, 100, true), (2, 10, 200, true), (3, 20, 50, false), (4, NULL, 70, true);
INSERT INTO dept VALUES (10, 'eng'), (20, 'ops');
CREATE VIEW active_emp AS SELECT id, dept, salary * 2 AS doubled FROM emp WHERE active;
-- a PostgreSQL view as a source
SELECT tide.create_view('by_dept', 'SELECT d.name, count(*) AS n, sum(a.doubled) AS total FROM active_emp a JOIN dept d ON d.id = a.dept GROUP BY d.name');
-- a sub-query in FROM
SELECT tide.create_view('rich', 'SELECT s.id, s.pay FROM (SELECT id, salary + 1 AS pay FROM emp WHERE salary > 60) s WHERE s.pay < 1000');
-- a CTE, referenced twice
SELECT tide.create_view('pairs', 'WITH e AS (SELECT id, dept FROM emp WHERE dept IS NOT NULL) SELECT a.id AS a, b.id AS b FROM e a JOIN e b ON a.dept = b.dept AND a.id < b.id');
SELECT operator, detail FROM tide.explain('SELECT s.id FROM (SELECT id FROM emp WHERE salary > 60) s');
SELECT * FROM by_dept ORDER BY name;
SELECT * FROM rich ORDER BY id;
SELECT * FROM pairs ORDER BY a, b;
INSERT INTO emp VALUES (5, 20, 300, true), (6, 10, 10, true);
UPDATE emp SET active = true WHERE id = 3;
UPDATE emp SET dept = 20 WHERE id = 1;
DELETE FROM emp WHERE id = 2;
UPDATE dept SET name = 'engineering' WHERE id = 10;
SELECT * FROM by_dept ORDER BY name;
SELECT * FROM rich ORDER BY id;
SELECT * FROM pairs ORDER BY a, b;
SELECT tide.verify('by_dept'), tide.verify('rich'), tide.verify('pairs');
-- a source view is expanded when the pg_tide view is created: replacing or
-- dropping it later does not change what the pg_tide view computes
CREATE OR REPLACE VIEW active_emp AS SELECT id, dept, salary * 3 AS doubled FROM emp WHERE active;
INSERT INTO emp VALUES (7, 20, 1, true);
SELECT * FROM by_dept ORDER BY name;
SELECT tide.verify('by_dept');
DROP VIEW active_emp;
SELECT definition FROM tide.views WHERE name = 'by_dept'::regclass;
-- sub-queries that aggregate: each is maintained as an internal view of its
-- own, which the view reads as a table
SELECT tide.create_view('per_dept_max', 'SELECT m.dept, m.top FROM (SELECT dept, max(salary) AS top FROM emp GROUP BY dept) m');
-- a table joined with an aggregate of itself: one change reaches the view
-- twice (directly and through the sub-query's view), and is applied once
SELECT tide.create_view('above_avg', $$SELECT e.id, e.salary, a.avg_salary FROM emp e
    JOIN (SELECT dept, avg(salary) AS avg_salary FROM emp GROUP BY dept) a ON a.dept = e.dept
    WHERE e.salary > a.avg_salary$$);
-- an aggregate of an aggregate, through a CTE; and a global aggregate
SELECT tide.create_view('dept_stats', $$WITH per_dept AS (SELECT dept, sum(salary) AS total FROM emp GROUP BY dept)
    SELECT count(*) AS depts, max(total) AS biggest, sum(total) AS payroll FROM per_dept$$);
SELECT tide.create_view('over_mean', 'SELECT e.id FROM emp e, (SELECT avg(salary) AS m FROM emp) s WHERE e.salary > s.m');
-- DISTINCT in a sub-query, a sub-query inside a sub-query
SELECT tide.create_view('dept_count', $$SELECT n.cnt, count(*) AS depts FROM
    (SELECT d.dept, count(*) AS cnt FROM (SELECT DISTINCT dept, active FROM emp) d GROUP BY d.dept) n GROUP BY n.cnt$$);
SELECT name, array_length(base_tables, 1) AS inputs FROM tide.views WHERE name::text IN ('per_dept_max', 'above_avg', 'dept_stats', 'over_mean', 'dept_count') ORDER BY 1;
SELECT count(*) AS internal_views FROM tide.catalog ch JOIN tide.catalog p ON p.id = ch.parent
  JOIN pg_class pc ON pc.oid = p.view WHERE pc.relnamespace = 'immediate_subquery'::regnamespace;
SELECT operator, detail, rule FROM tide.explain('SELECT m.dept, m.top FROM (SELECT dept, max(salary) AS top FROM emp GROUP BY dept) m') WHERE operator = 'Subquery';
SELECT * FROM per_dept_max ORDER BY dept;
SELECT * FROM above_avg ORDER BY id;
SELECT * FROM dept_stats;
SELECT * FROM dept_count ORDER BY cnt;
INSERT INTO emp VALUES (8, 10, 500, false), (9, 30, 40, true), (10, NULL, 70, true);
UPDATE emp SET salary = salary * 2 WHERE dept = 20;
DELETE FROM emp WHERE id = 5;
UPDATE emp SET dept = 30 WHERE id = 6;
SELECT * FROM per_dept_max ORDER BY dept;
SELECT * FROM above_avg ORDER BY id;
SELECT * FROM dept_stats;
SELECT * FROM over_mean ORDER BY id;
SELECT * FROM dept_count ORDER BY cnt;
SELECT tide.verify('per_dept_max'), tide.verify('above_avg'), tide.verify('dept_stats'), tide.verify('over_mean'), tide.verify('dept_count');
-- rollback and savepoints
BEGIN;
DELETE FROM emp WHERE dept = 10;
SELECT * FROM per_dept_max ORDER BY dept;
ROLLBACK;
BEGIN;
INSERT INTO emp VALUES (11, 40, 900, true);
SAVEPOINT s;
UPDATE emp SET salary = 1 WHERE dept = 40;
ROLLBACK TO SAVEPOINT s;
UPDATE emp SET salary = salary + 1 WHERE id = 11;
COMMIT;
SELECT * FROM per_dept_max ORDER BY dept;
SELECT tide.verify('per_dept_max'), tide.verify('above_avg'), tide.verify('dept_stats'), tide.verify('over_mean'), tide.verify('dept_count');
-- one statement changing the table twice (a writable CTE), then TRUNCATE
WITH moved AS (DELETE FROM emp WHERE dept = 40 RETURNING id, salary)
INSERT INTO emp SELECT id + 100, 10, salary FROM moved;
SELECT tide.verify('per_dept_max'), tide.verify('above_avg'), tide.verify('dept_stats'), tide.verify('over_mean'), tide.verify('dept_count');
-- a full refresh rebuilds the internal views first
SELECT tide.refresh('above_avg', full => true) > 0 AS refreshed, tide.verify('above_avg');
TRUNCATE emp;
SELECT * FROM dept_stats;
SELECT tide.verify('per_dept_max'), tide.verify('above_avg'), tide.verify('dept_stats'), tide.verify('over_mean'), tide.verify('dept_count');
INSERT INTO emp VALUES (1, 10, 100, true), (2, 10, 300, true), (3, 20, 50, false);
SELECT * FROM above_avg ORDER BY id;
SELECT tide.verify('per_dept_max'), tide.verify('above_avg'), tide.verify('dept_stats'), tide.verify('over_mean'), tide.verify('dept_count');
-- the internal views are pg_tide's: not writable, dropped with their view
SELECT set_config('tide_test.ins', format('INSERT INTO %s VALUES (1, 1)', c.view), false) IS NOT NULL AS ok
  FROM tide.catalog c WHERE parent = (SELECT id FROM tide.catalog WHERE view = 'per_dept_max'::regclass);
DO $$ BEGIN EXECUTE current_setting('tide_test.ins'); EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'refused: %', SQLERRM ~ 'cannot change pg_tide view'; END $$;
SELECT tide.drop_view('per_dept_max');
SELECT count(*) AS internal_views FROM tide.catalog ch JOIN tide.catalog p ON p.id = ch.parent
  JOIN pg_class pc ON pc.oid = p.view WHERE pc.relnamespace = 'immediate_subquery'::regnamespace;
SET client_min_messages = warning;
DROP TABLE emp CASCADE;
RESET client_min_messages;
SELECT count(*) AS views_left FROM tide.catalog c WHERE c.view::text NOT LIKE 'tide_state.%' AND c.view::regclass IN
    (SELECT oid FROM pg_class WHERE relnamespace = 'immediate_subquery'::regnamespace);
SELECT count(*) AS orphans FROM tide.catalog c WHERE c.parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tide.catalog p WHERE p.id = c.parent);
SELECT count(*) AS subquery_tables_left FROM pg_class
 WHERE relnamespace = 'tide_state'::regnamespace AND relkind = 'r' AND relname LIKE 'subquery%' AND oid NOT IN (SELECT view FROM tide.catalog);
-- a LATERAL sub-query that is a plain select-project-join is pulled up (its
-- references to the items before it become a join condition); one that
-- aggregates without GROUP BY, correlated by equalities, is grouped by the
-- correlated columns and LEFT JOINed (a row without a group reads the
-- aggregates over no rows); others are refused, naming them
CREATE TABLE lat (id int, x int);
INSERT INTO lat VALUES (1, 10), (2, 20), (3, NULL), (4, 20);
SELECT tide.create_view('lat_join', 'SELECT l.id, s.id AS other, s.x FROM lat l, LATERAL (SELECT l2.id, l2.x FROM lat l2 WHERE l2.x = l.x AND l2.id <> l.id) s');
SELECT tide.create_view('lat_cross', 'SELECT l.id, s.y FROM lat l CROSS JOIN LATERAL (SELECT l2.x * 2 AS y FROM lat l2 WHERE l2.id < l.id) s');
SELECT tide.create_view('lat_agg', 'SELECT l.id, s.n, s.total, s.n * 10 AS n10 FROM lat l, LATERAL (SELECT count(*) AS n, sum(l2.id) AS total FROM lat l2 WHERE l2.x = l.x) s WHERE s.n < 3');
SELECT tide.create_view('lat_agg_cross', 'SELECT l.id, s.top FROM lat l CROSS JOIN LATERAL (SELECT max(l2.id) AS top FROM lat l2 WHERE l2.x = l.x) s');
INSERT INTO lat VALUES (5, 10), (6, NULL);
UPDATE lat SET x = 10 WHERE id = 2;
DELETE FROM lat WHERE id = 1;
SELECT * FROM lat_join ORDER BY id, other;
SELECT * FROM lat_agg ORDER BY id;
SELECT tide.verify('lat_join'), tide.verify('lat_cross'), tide.verify('lat_agg'), tide.verify('lat_agg_cross');
SELECT tide.drop_view('lat_join'), tide.drop_view('lat_cross'), tide.drop_view('lat_agg'), tide.drop_view('lat_agg_cross');
SELECT tide.create_view('lat_v', 'SELECT l.id, s.m FROM lat l, LATERAL (SELECT max(x) AS m FROM lat l2 WHERE l2.id < l.id) s');

-- Sub-queries in FROM, CTEs and views used as sources: a select-project-join
-- sub-query is pulled up into the view's join block and maintained with it.
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
-- sub-queries that are not a plain select-project-join are refused, naming them
SELECT tide.create_view('per_dept_max', 'SELECT m.dept, m.top FROM (SELECT dept, max(salary) AS top FROM emp GROUP BY dept) m');

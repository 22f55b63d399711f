-- Window functions: the partitions a change touches are recomputed, the
-- others stay. PARTITION BY keys must be columns of the view; a window
-- without PARTITION BY is one partition.
CREATE SCHEMA immediate_window;
SET search_path = immediate_window, public;
CREATE TABLE pay (id int, dept int, amount int);
INSERT INTO pay SELECT g, g % 3, (g * 37) % 100 FROM generate_series(1, 15) g;
INSERT INTO pay VALUES (100, NULL, 5), (101, NULL, 7);
SELECT tide.create_view('ranked', $$SELECT dept, id, rank() OVER (PARTITION BY dept ORDER BY amount DESC, id) AS rk,
    sum(amount) OVER (PARTITION BY dept ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS pair,
    lag(id) OVER (PARTITION BY dept ORDER BY id) AS previous FROM pay WHERE amount > 10$$);
SELECT tide.create_view('running', 'SELECT id, amount, sum(amount) OVER (ORDER BY id) AS total, row_number() OVER (ORDER BY id) AS n FROM pay');
SELECT operator, incremental, rule FROM tide.explain('SELECT dept, id, rank() OVER (PARTITION BY dept ORDER BY amount) FROM pay') WHERE operator = 'Window';
SELECT * FROM ranked WHERE dept = 1 ORDER BY rk;
-- a row moves between partitions, another leaves, new rows, a NULL partition
UPDATE pay SET dept = 1 WHERE id = 3;
DELETE FROM pay WHERE id = 4;
INSERT INTO pay VALUES (200, 1, 98), (201, NULL, 60);
UPDATE pay SET amount = 1 WHERE id = 7;
SELECT * FROM ranked WHERE dept = 1 ORDER BY rk;
SELECT * FROM ranked WHERE dept IS NULL ORDER BY rk;
SELECT * FROM running ORDER BY id LIMIT 5;
SELECT tide.verify('ranked'), tide.verify('running');
BEGIN;
DELETE FROM pay WHERE dept = 2;
SELECT count(*) AS dept_2_rows FROM ranked WHERE dept = 2;
ROLLBACK;
TRUNCATE pay;
INSERT INTO pay VALUES (1, 1, 50), (2, 1, 40);
SELECT * FROM ranked ORDER BY dept, rk;
SELECT tide.verify('ranked'), tide.verify('running');
-- DISTINCT ON: the first row per key, recomputed per key a change touches
SELECT tide.create_view('top_per_dept', 'SELECT DISTINCT ON (dept) dept, id, amount FROM pay ORDER BY dept, amount DESC, id');
INSERT INTO pay VALUES (3, 2, 70), (4, 2, 90), (5, NULL, 1);
UPDATE pay SET amount = 95 WHERE id = 3;
DELETE FROM pay WHERE id = 1;
SELECT * FROM top_per_dept ORDER BY dept;
SELECT tide.verify('top_per_dept');
SELECT tide.create_view('bad', 'SELECT DISTINCT ON (dept) id FROM pay ORDER BY dept, id');
-- DISTINCT ON over GROUP BY and over windows: the rows under it are an internal view
SELECT tide.create_view('commonest_amount', 'SELECT DISTINCT ON (dept) dept, amount, count(*) AS n FROM pay GROUP BY dept, amount ORDER BY dept, count(*) DESC, amount');
SELECT tide.create_view('last_ranked', 'SELECT DISTINCT ON (dept) dept, id, rank() OVER (PARTITION BY dept ORDER BY amount DESC, id) AS rk FROM pay ORDER BY dept, id DESC');
INSERT INTO pay VALUES (6, 2, 70), (7, 2, 70), (8, NULL, 1), (9, 1, 95);
UPDATE pay SET amount = 70 WHERE id = 3;
DELETE FROM pay WHERE id = 4;
SELECT * FROM commonest_amount ORDER BY dept;
SELECT * FROM last_ranked ORDER BY dept;
SELECT tide.verify('commonest_amount'), tide.verify('last_ranked');
-- windows over GROUP BY: the groups are an internal view, the windows computed over its rows
SELECT tide.create_view('dept_rank', 'SELECT dept, sum(amount) AS total, rank() OVER (ORDER BY sum(amount) DESC, dept) AS r, sum(amount) * 100 / sum(sum(amount)) OVER () AS pct FROM pay GROUP BY dept');
SELECT * FROM dept_rank ORDER BY r;
INSERT INTO pay VALUES (10, 3, 500), (11, 1, 1);
DELETE FROM pay WHERE id = 2;
SELECT * FROM dept_rank ORDER BY r;
SELECT tide.verify('dept_rank');
-- windows over different PARTITION BY lists: recomputed by the keys common
-- to all of them (none in common: the whole view)
SELECT tide.create_view('two_windows', $$SELECT dept, id, amount % 2 AS parity, rank() OVER (PARTITION BY dept ORDER BY amount, id) AS rk,
    count(*) OVER (PARTITION BY dept, amount % 2) AS n_parity FROM pay$$);
SELECT tide.create_view('apart', 'SELECT dept, id, rank() OVER (PARTITION BY dept ORDER BY amount, id) AS rk, row_number() OVER (ORDER BY id) AS n FROM pay');
SELECT operator, rule FROM tide.explain('SELECT dept, amount % 2 AS parity, rank() OVER (PARTITION BY dept ORDER BY amount, id), count(*) OVER (PARTITION BY dept, amount % 2) FROM pay') WHERE operator = 'Window';
INSERT INTO pay VALUES (300, 1, 11), (301, 2, 12), (302, NULL, 13);
UPDATE pay SET amount = amount + 1 WHERE id IN (2, 3);
DELETE FROM pay WHERE id = 5;
UPDATE pay SET dept = 2 WHERE id = 300;
SELECT * FROM two_windows ORDER BY dept, rk;
SELECT tide.verify('two_windows'), tide.verify('apart');
-- windows over a sub-query in FROM (pulled up into the query)
SELECT tide.create_view('ranked_sub', $$SELECT s.dept, s.id, rank() OVER (PARTITION BY s.dept ORDER BY s.amount, s.id) AS rk
    FROM (SELECT dept, id, amount FROM pay WHERE amount > 20) s$$);
INSERT INTO pay VALUES (400, 1, 25), (401, 2, 90);
UPDATE pay SET amount = 5 WHERE id = 401;
SELECT tide.verify('ranked_sub');
-- refused, naming the reason
SELECT tide.create_view('bad', 'SELECT id, rank() OVER (PARTITION BY dept ORDER BY amount) FROM pay');
SET client_min_messages = warning;
DROP SCHEMA immediate_window CASCADE;
RESET client_min_messages;

-- Base tables and one view per locking scheme, for the concurrent writers test.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_tide;
CREATE TABLE acct (id int PRIMARY KEY, branch int, bal int, tag text);
CREATE TABLE branch (id int PRIMARY KEY, region text, bonus int);
INSERT INTO branch SELECT i, (ARRAY['n','s','e'])[1 + i % 3], i FROM generate_series(0, 9) i;
INSERT INTO acct SELECT i, i % 10, (i * 7) % 100, (ARRAY['a','b',NULL])[1 + i % 3] FROM generate_series(1, 2000) i;
SELECT tide.create_view('c_agg', 'SELECT branch, count(*) AS n, sum(bal) AS total, min(bal) AS lo, max(bal) AS hi FROM acct GROUP BY branch');
SELECT tide.create_view('c_global', 'SELECT count(*) AS n, sum(bal) AS total, count(DISTINCT tag) AS tags FROM acct');
SELECT tide.create_view('c_join', 'SELECT b.region, count(*) AS n, sum(a.bal + b.bonus) AS total FROM acct a JOIN branch b ON b.id = a.branch GROUP BY b.region');
SELECT tide.create_view('c_bag', 'SELECT bal % 5 AS m, tag FROM acct WHERE bal > 50');
SELECT tide.create_view('c_distinct', 'SELECT DISTINCT branch, tag FROM acct');
SELECT tide.create_view('c_hidden', 'SELECT sum(bal) AS total FROM acct GROUP BY branch, tag');
SELECT tide.create_view('c_pairs', 'SELECT a.id, b.region, a.bal FROM acct a JOIN branch b ON b.id = a.branch WHERE a.bal > 100');
SELECT tide.create_view('c_extremes', 'SELECT b.region, min(a.bal) AS lo, max(a.bal + b.bonus) AS hi, count(DISTINCT a.tag) AS tags FROM acct a JOIN branch b ON b.id = a.branch GROUP BY b.region');
-- Views over internal views: an aggregate of the table joined with the table,
-- outer joins, NOT EXISTS, top-K, window functions, set operations.
SELECT tide.create_view('c_above', 'SELECT a.id, a.bal FROM acct a JOIN (SELECT branch, avg(bal) AS av FROM acct GROUP BY branch) s ON s.branch = a.branch WHERE a.bal > s.av + 40');
SELECT tide.create_view('c_outer', 'SELECT b.id, b.region, count(a.id) AS n FROM branch b LEFT JOIN acct a ON a.branch = b.id AND a.bal > 110 GROUP BY b.id, b.region');
SELECT tide.create_view('c_anti', 'SELECT b.id FROM branch b WHERE NOT EXISTS (SELECT 1 FROM acct a WHERE a.branch = b.id AND a.bal > 118)');
SELECT tide.create_view('c_top', 'SELECT id, bal FROM acct ORDER BY bal DESC, id LIMIT 5');
SELECT tide.create_view('c_rank', 'SELECT branch, id, rank() OVER (PARTITION BY branch ORDER BY bal DESC, id) AS r FROM acct WHERE bal > 100');
SELECT tide.create_view('c_union', 'SELECT branch AS k, tag FROM acct WHERE bal > 90 UNION SELECT id, region FROM branch');
-- Deferred views over the same tables (two with WAL capture, the others
-- with change logs), refreshed by the background
-- refresher every 50 ms while the writers run (and by the check after).
SELECT tide.create_view('d_agg', 'SELECT branch, count(*) AS n, sum(bal) AS total, min(bal) AS lo, max(bal) AS hi FROM acct GROUP BY branch', mode => 'deferred', capture => 'wal', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_join', 'SELECT b.region, count(*) AS n, sum(a.bal + b.bonus) AS total FROM acct a JOIN branch b ON b.id = a.branch GROUP BY b.region', mode => 'deferred', capture => 'wal', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_pairs', 'SELECT a.id, b.region, a.bal FROM acct a JOIN branch b ON b.id = a.branch WHERE a.bal > 100', mode => 'deferred', capture => 'trigger', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_above', 'SELECT a.id, a.bal FROM acct a JOIN (SELECT branch, avg(bal) AS av FROM acct GROUP BY branch) s ON s.branch = a.branch WHERE a.bal > s.av + 40', mode => 'deferred', capture => 'trigger', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_outer', 'SELECT b.id, b.region, count(a.id) AS n FROM branch b LEFT JOIN acct a ON a.branch = b.id AND a.bal > 110 GROUP BY b.id, b.region', mode => 'deferred', capture => 'trigger', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_top', 'SELECT id, bal FROM acct ORDER BY bal DESC, id LIMIT 5', mode => 'deferred', capture => 'trigger', refresh_interval => '50 milliseconds');
SELECT tide.create_view('d_over', 'SELECT count(*) AS groups, sum(n) AS n FROM d_agg', mode => 'deferred', capture => 'trigger', refresh_interval => '50 milliseconds');
SELECT bool_and(tide.wait(name::text)) AS built FROM tide.views WHERE mode = 'deferred';

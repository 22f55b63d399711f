-- refresh brings a view up to date (a full rebuild for now) and records it.
CREATE TABLE r (k int, v int);
INSERT INTO r SELECT i % 4, i FROM generate_series(1, 100) i;
SELECT tide.create_view('r_sum', 'SELECT k, count(*) AS n, sum(v) AS s FROM r GROUP BY k');
SELECT last_refresh_at AS first_refresh FROM tide.views WHERE name = 'r_sum'::regclass \gset
INSERT INTO r VALUES (9, 9), (1, NULL);
DELETE FROM r WHERE k = 0;
UPDATE r SET v = v + 1 WHERE k = 2;
SELECT tide.verify('r_sum');
SELECT tide.refresh('r_sum');
SELECT tide.verify('r_sum');
SELECT * FROM r_sum ORDER BY k;
SELECT tide.refresh('r_sum', full => true);
SELECT row_count, status, last_refresh_at >= :'first_refresh' AS later FROM tide.views WHERE name = 'r_sum'::regclass;

-- refresh is transactional: a rollback leaves the view as it was
BEGIN;
INSERT INTO r VALUES (42, 42);
SELECT tide.refresh('r_sum');
SELECT count(*) FROM r_sum;
ROLLBACK;
SELECT count(*) FROM r_sum;
SELECT tide.verify('r_sum');

-- a table emptied: the aggregate view without GROUP BY keeps its one row
CREATE TABLE e (x numeric);
INSERT INTO e VALUES (1), (2);
SELECT tide.create_view('e_agg', 'SELECT count(*) AS n, sum(x) AS s, avg(x) AS a FROM e');
DELETE FROM e;
SELECT tide.refresh('e_agg');
SELECT * FROM e_agg;

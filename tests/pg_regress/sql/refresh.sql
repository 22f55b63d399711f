-- refresh: an immediate view is always current; full => true rebuilds it
-- (and its state) from scratch, repairing changes pg_tide could not see.
CREATE TABLE r (k int, v int);
INSERT INTO r SELECT i % 4, i FROM generate_series(1, 100) i;
SELECT tide.create_view('r_sum', 'SELECT k, count(*) AS n, sum(v) AS s FROM r GROUP BY k');
SELECT last_refresh_at AS first_refresh FROM tide.views WHERE name = 'r_sum'::regclass \gset
INSERT INTO r VALUES (9, 9), (1, NULL);
DELETE FROM r WHERE k = 0;
UPDATE r SET v = v + 1 WHERE k = 2;
SELECT tide.verify('r_sum');
SELECT * FROM r_sum ORDER BY k;
SELECT tide.refresh('r_sum');
-- changes made while triggers are skipped cannot be seen ...
SET session_replication_role = replica;
INSERT INTO r VALUES (42, 42);
RESET session_replication_role;
SELECT tide.verify('r_sum');
-- ... until a full refresh
SELECT tide.refresh('r_sum', full => true);
SELECT tide.verify('r_sum');
SELECT * FROM r_sum ORDER BY k;
-- and maintenance goes on from the rebuilt state
UPDATE r SET k = 42 WHERE k = 9;
SELECT tide.verify('r_sum');
SELECT row_count, status, last_refresh_at >= :'first_refresh' AS later FROM tide.views WHERE name = 'r_sum'::regclass;

-- refresh is transactional: a rollback leaves the view as it was
SET session_replication_role = replica;
DELETE FROM r WHERE k = 42;
RESET session_replication_role;
BEGIN;
SELECT tide.refresh('r_sum', full => true);
SELECT count(*) FROM r_sum;
ROLLBACK;
SELECT count(*) FROM r_sum;
SELECT tide.verify('r_sum');
SELECT tide.refresh('r_sum', full => true);

-- a table emptied: the aggregate view without GROUP BY keeps its one row
CREATE TABLE e (x numeric);
INSERT INTO e VALUES (1), (2);
SELECT tide.create_view('e_agg', 'SELECT count(*) AS n, sum(x) AS s, avg(x) AS a FROM e');
DELETE FROM e;
SELECT * FROM e_agg;
SELECT tide.verify('e_agg');

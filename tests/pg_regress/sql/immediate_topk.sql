-- ORDER BY ... LIMIT / OFFSET: the query without its LIMIT is kept by an
-- internal view indexed on the ORDER BY keys; the view holds its first rows
-- and is refilled from it when it changes (deleting a row from the top
-- brings the next one in, without recomputing the query).
CREATE SCHEMA immediate_topk;
SET search_path = immediate_topk, public;
CREATE TABLE sales (id int PRIMARY KEY, region text, amount int);
INSERT INTO sales SELECT g, 'r' || (g % 7), (g * 37) % 1000 FROM generate_series(1, 200) g;
SELECT tide.create_view('top5', 'SELECT id, amount FROM sales ORDER BY amount DESC, id LIMIT 5');
SELECT tide.create_view('top_regions', 'SELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY total DESC, region LIMIT 3');
SELECT tide.create_view('page2', 'SELECT id FROM sales ORDER BY id LIMIT 3 OFFSET 3');
-- ordered by a column it does not show
SELECT tide.create_view('cheapest_ids', 'SELECT id FROM sales ORDER BY amount, id LIMIT 4');
SELECT operator, detail, incremental FROM tide.explain('SELECT id, amount FROM sales ORDER BY amount DESC, id LIMIT 5') WHERE operator = 'Limit';
SELECT * FROM top5 ORDER BY amount DESC, id;
SELECT * FROM top_regions ORDER BY total DESC;
SELECT * FROM page2 ORDER BY id;
SELECT * FROM cheapest_ids ORDER BY id;
-- the top row leaves: the sixth comes in
DELETE FROM sales WHERE id = 27;
SELECT * FROM top5 ORDER BY amount DESC, id;
-- a row climbs to the top, a new one enters, the first ids go
UPDATE sales SET amount = 5000 WHERE id = 100;
INSERT INTO sales VALUES (1000, 'r9', 999);
DELETE FROM sales WHERE id <= 4;
SELECT * FROM top5 ORDER BY amount DESC, id;
SELECT * FROM top_regions ORDER BY total DESC;
SELECT * FROM page2 ORDER BY id;
SELECT tide.verify('top5'), tide.verify('top_regions'), tide.verify('page2'), tide.verify('cheapest_ids');
-- a statement that changes no row leaves the views (and their internal
-- views) unwritten: no refill
-- (counted as a difference: PostgreSQL 15's per-transaction counters also
-- hold earlier transactions' counts until the statistics are flushed)
CREATE TEMP VIEW view_writes AS
SELECT sum(pg_stat_get_xact_tuples_inserted(r.oid) + pg_stat_get_xact_tuples_deleted(r.oid)
           + pg_stat_get_xact_tuples_updated(r.oid)) AS n
  FROM pg_class r WHERE r.oid IN ('top5'::regclass, 'top_regions'::regclass, 'page2'::regclass, 'cheapest_ids'::regclass)
     OR (r.relnamespace = 'tide_state'::regnamespace AND r.relkind = 'r');
BEGIN;
SELECT n AS before FROM view_writes \gset
UPDATE sales SET amount = amount + 1 WHERE id < 0;
DELETE FROM sales WHERE region = 'nowhere';
SELECT n - :before AS rows_written FROM view_writes;
UPDATE sales SET amount = amount + 1 WHERE id = 100;
SELECT n - :before > 0 AS a_change_writes FROM view_writes;
ROLLBACK;
DROP VIEW view_writes;
-- rollback, fewer rows than the limit, TRUNCATE
BEGIN;
DELETE FROM sales WHERE id > 6;
SELECT * FROM top5 ORDER BY amount DESC, id;
ROLLBACK;
TRUNCATE sales;
SELECT count(*) AS rows_left FROM top5;
INSERT INTO sales VALUES (1, 'a', 10), (2, 'b', 20);
SELECT * FROM top5 ORDER BY amount DESC, id;
SELECT tide.verify('top5'), tide.verify('top_regions'), tide.verify('page2'), tide.verify('cheapest_ids');
-- the index the rows are read through
SELECT count(*) AS order_key_indexes FROM pg_indexes WHERE schemaname = 'tide_state' AND indexdef LIKE '%(amount DESC, id)%';
-- top-K in a sub-query in FROM: an internal view of its own, joined
CREATE TABLE region_heads (region text, head text);
INSERT INTO region_heads SELECT DISTINCT region, 'head of ' || region FROM sales;
SELECT tide.create_view('top_heads', 'SELECT t.id, t.amount, h.head FROM (SELECT id, region, amount FROM sales ORDER BY amount DESC, id LIMIT 3) t JOIN region_heads h ON h.region = t.region');
UPDATE sales SET amount = amount + 1000 WHERE id IN (SELECT id FROM sales ORDER BY amount LIMIT 2);
DELETE FROM sales WHERE id = (SELECT id FROM sales ORDER BY amount DESC, id LIMIT 1);
UPDATE region_heads SET head = upper(head);
SELECT * FROM top_heads ORDER BY amount DESC, id;
SELECT tide.verify('top_heads');
SET client_min_messages = warning;
DROP SCHEMA immediate_topk CASCADE;
RESET client_min_messages;

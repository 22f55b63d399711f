-- create_view: shapes of queries, the view's columns, names, indexes, direct writes.
CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), placed date, note json);
CREATE TABLE customers (name text PRIMARY KEY, region text);
INSERT INTO customers VALUES ('ann', 'north'), ('bob', 'south'), ('cy', NULL);
INSERT INTO orders VALUES
  (1, 'ann', 10.50, '2024-01-01', '{"a":1}'),
  (2, 'ann', 20.00, '2024-01-02', NULL),
  (3, 'bob', 5.25, '2024-01-02', '[1,2]'),
  (4, 'cy', NULL, '2024-01-03', NULL),
  (5, NULL, 7.00, '2024-01-03', NULL);

-- aggregate over a join, returns the row count
SELECT tide.create_view('by_region',
  'SELECT c.region, count(*) AS n, sum(o.amount) AS total
     FROM orders o JOIN customers c ON c.name = o.customer
    GROUP BY c.region');
SELECT * FROM by_region ORDER BY region NULLS FIRST;

-- exactly the query's columns, names and types (typmods and collations kept)
SELECT tide.create_view('order_lines', 'SELECT id, customer COLLATE "C" AS who, amount, placed, note FROM orders WHERE amount IS NOT NULL');
SELECT attname, format_type(atttypid, atttypmod) AS type, attcollation::regcollation
  FROM pg_attribute WHERE attrelid = 'order_lines'::regclass AND attnum > 0 ORDER BY attnum;
SELECT * FROM order_lines ORDER BY id;

-- duplicates are kept: a bag, not a set
SELECT tide.create_view('placed_days', 'SELECT placed FROM orders');
SELECT placed, count(*) FROM placed_days GROUP BY placed ORDER BY placed;

-- DISTINCT, an aggregate without GROUP BY over no rows
SELECT tide.create_view('days', 'SELECT DISTINCT placed FROM orders');
SELECT tide.create_view('totals', 'SELECT count(*) AS n, sum(amount) AS s, avg(amount) AS a FROM orders WHERE id < 0');
SELECT * FROM totals;

-- a sub-query in FROM, and a PostgreSQL view as a source (expanded)
SELECT tide.create_view('big', 'SELECT s.id FROM (SELECT id, amount FROM orders) s WHERE s.amount > 6');
CREATE VIEW north_customers AS SELECT name FROM customers WHERE region = 'north';
SELECT tide.create_view('north_orders', 'SELECT o.id FROM orders o JOIN north_customers n ON n.name = o.customer');
SELECT * FROM north_orders ORDER BY id;

-- what this version cannot maintain is refused, naming the construct
SELECT tide.create_view('people', 'SELECT o.id, x.n FROM orders o, LATERAL (SELECT count(*) AS n FROM orders o2 WHERE o2.amount < o.amount) x');
SELECT tide.create_view('outer', 'SELECT o.id, c.region FROM orders o FULL JOIN customers c ON c.name > o.customer');
SELECT tide.create_view('top', 'SELECT id FROM orders ORDER BY amount DESC LIMIT 2');

-- ORDER BY without LIMIT is accepted and ignored, with a NOTICE
SELECT tide.create_view('sorted', 'SELECT id FROM orders ORDER BY id DESC');

-- odd names: mixed case, spaces, keywords, quotes, an explicit schema
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Order Items" ("Item Id" int, "select" text, "we""ird" int);
INSERT INTO "Sales Dept"."Order Items" VALUES (1, 'a', 1), (2, 'b', 2), (3, 'a', 3);
SELECT tide.create_view('"Sales Dept"."Item ""Totals"""',
  'SELECT "select", sum("we""ird") AS "Sum ""x""" FROM "Sales Dept"."Order Items" GROUP BY "select"');
SELECT * FROM "Sales Dept"."Item ""Totals""" ORDER BY 1;
SELECT tide.create_view('"MixedCase"', 'SELECT "Item Id" FROM "Sales Dept"."Order Items"');
SELECT count(*) FROM "MixedCase";

-- the catalog lists every view
SELECT name, mode, status, row_count, created_at <= now() AS created, last_refresh_ms >= 0 AS timed
  FROM tide.views ORDER BY name::text;
SELECT query, base_tables FROM tide.views WHERE name = 'days'::regclass;
SELECT base_tables FROM tide.views WHERE name = 'by_region'::regclass;

-- users can index the view for their reads
CREATE INDEX ON order_lines (who);
CREATE UNIQUE INDEX ON by_region (region) NULLS NOT DISTINCT;
SELECT tide.refresh('by_region', full => true);

-- direct writes are refused
INSERT INTO by_region VALUES ('x', 1, 1);
UPDATE by_region SET n = 0;
DELETE FROM by_region;
TRUNCATE by_region;
COPY by_region FROM stdin;
x	1	1
\.
SELECT * FROM by_region ORDER BY region NULLS FIRST;

-- the view keeps exactly its query's columns
ALTER TABLE by_region ADD COLUMN extra int;
ALTER TABLE by_region DROP COLUMN total;
ALTER TABLE by_region RENAME COLUMN n TO orders;
ALTER TABLE by_region ALTER COLUMN n TYPE numeric;
-- other ALTER TABLE forms are the user's to make
ALTER TABLE by_region SET (fillfactor = 90);
ALTER TABLE by_region ALTER COLUMN region SET STATISTICS 500;
SELECT tide.verify('by_region');

-- column names after the view's name, as CREATE VIEW name (a, b) takes
-- them (and pg_ivm's create_immv): the query's first columns, renamed
CREATE TABLE pairs (i int, v int);
INSERT INTO pairs VALUES (1, 10), (2, 20);
SELECT tide.create_view('self_pairs(left_v, right_v)', 'SELECT a.v, b.v FROM pairs a JOIN pairs b ON a.i = b.i');
SELECT tide.create_view('"Pair Sums"( "Key" )', 'SELECT i, sum(v) FROM pairs GROUP BY i');
SELECT tide.create_view('too_many(a, b, c)', 'SELECT i, v FROM pairs');
-- without them, two columns of one name are refused as by CREATE VIEW
SELECT tide.create_view('same_names', 'SELECT a.v, b.v FROM pairs a JOIN pairs b ON a.i = b.i');
-- a query without FROM reads one row of nothing
SELECT tide.create_view('constant', 'SELECT 1 AS one, ''x'' AS x');
SELECT tide.create_view('pair_count', 'SELECT (SELECT count(*) FROM pairs) AS n');
INSERT INTO pairs VALUES (3, 30);
UPDATE pairs SET v = v + 1 WHERE i = 1;
SELECT * FROM self_pairs ORDER BY left_v;
SELECT * FROM "Pair Sums" ORDER BY "Key";
SELECT * FROM constant, pair_count;
SELECT tide.verify('self_pairs'), tide.verify('"Pair Sums"'), tide.verify('constant'), tide.verify('pair_count');
SELECT tide.drop_view('self_pairs'), tide.drop_view('"Pair Sums"'), tide.drop_view('constant'), tide.drop_view('pair_count');
DROP TABLE pairs;

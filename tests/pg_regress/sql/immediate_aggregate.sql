-- Immediate maintenance of GROUP BY, aggregates, HAVING and DISTINCT.
CREATE SCHEMA immediate_aggregate;
SET search_path = immediate_aggregate, public;
CREATE TABLE sales (id int, region text, qty int, price numeric, discount float8, day date);
INSERT INTO sales SELECT i, (ARRAY['n','s','e'])[1 + i % 3], i % 7, (i % 11) * 1.25, (i % 4) / 10.0, date '2024-01-01' + i % 5
  FROM generate_series(1, 300) i;
SELECT tide.create_view('by_region',
  'SELECT region, count(*) AS n, count(qty) AS nq, sum(qty) AS q, sum(price) AS revenue, avg(price) AS mean,
          avg(qty) AS mean_qty, min(price) AS lo, max(price) AS hi, min(day) AS first_day, max(region) AS r
     FROM sales GROUP BY region');
SELECT * FROM by_region ORDER BY region;
-- rows move between groups; a new group appears; a group empties
UPDATE sales SET region = 'w' WHERE id % 10 = 0;
SELECT tide.verify('by_region');
DELETE FROM sales WHERE region = 'e';
SELECT region, n FROM by_region ORDER BY region;
SELECT tide.verify('by_region');
-- min and max after deleting the extreme: recomputed for that group only
SELECT region, lo, hi FROM by_region WHERE region = 'n';
DELETE FROM sales WHERE region = 'n' AND price = (SELECT max(price) FROM sales WHERE region = 'n');
SELECT region, lo, hi FROM by_region WHERE region = 'n';
SELECT tide.verify('by_region');
-- NULL group keys and NULL values; sum over only NULLs is NULL
INSERT INTO sales VALUES (1001, NULL, NULL, NULL, NULL, NULL), (1002, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM by_region WHERE region IS NULL;
SELECT tide.verify('by_region');
UPDATE sales SET price = 2 WHERE id = 1001;
SELECT region, revenue, mean, lo, hi FROM by_region WHERE region IS NULL;
DELETE FROM sales WHERE id = 1001;
SELECT region, revenue, mean, lo, hi FROM by_region WHERE region IS NULL;
SELECT tide.verify('by_region');

-- expressions over aggregates, HAVING, FILTER
SELECT tide.create_view('busy_days',
  'SELECT day, sum(price * qty) / nullif(sum(qty), 0) AS avg_price, count(*) FILTER (WHERE qty > 3) AS big,
          sum(price) FILTER (WHERE region = ''n'') AS north
     FROM sales GROUP BY day HAVING count(*) > 55');
SELECT * FROM busy_days ORDER BY day;
DELETE FROM sales WHERE day = '2024-01-02' AND id % 2 = 0;
SELECT day FROM busy_days ORDER BY day;
INSERT INTO sales SELECT 2000 + i, 'n', 5, 3, 0, '2024-01-02' FROM generate_series(1, 40) i;
SELECT day FROM busy_days ORDER BY day;
SELECT tide.verify('busy_days');

-- aggregates without GROUP BY: one row, also over an empty table
SELECT tide.create_view('overall', 'SELECT count(*) AS n, sum(qty) AS q, avg(price) AS mean, min(day) AS first FROM sales');
DELETE FROM sales;
SELECT * FROM overall;
SELECT tide.verify('overall');
INSERT INTO sales VALUES (1, 'n', 2, 1.5, 0, '2024-02-01');
SELECT * FROM overall;
SELECT tide.verify('overall'), tide.verify('by_region'), tide.verify('busy_days');

-- exact numeric and integer results: avg of integers is the same numeric PostgreSQL computes
INSERT INTO sales SELECT i, 's', i, i / 3.0, 0, '2024-02-02' FROM generate_series(1, 10) i;
SELECT mean_qty, mean FROM by_region WHERE region = 's';
SELECT avg(qty), avg(price) FROM sales WHERE region = 's';

-- DISTINCT keeps a count per row; a row goes when its last copy goes
SELECT tide.create_view('regions', 'SELECT DISTINCT region, day FROM sales');
SELECT * FROM regions ORDER BY 1, 2;
DELETE FROM sales WHERE region = 's' AND qty < 10;
SELECT * FROM regions ORDER BY 1, 2;
DELETE FROM sales WHERE region = 's';
SELECT * FROM regions ORDER BY 1, 2;
SELECT tide.verify('regions');

-- bool_and, bool_or, every
SELECT tide.create_view('flags', 'SELECT region, bool_and(qty > 0) AS all_pos, bool_or(qty > 8) AS any_big, every(price < 100) AS cheap FROM sales GROUP BY region');
SELECT * FROM flags ORDER BY region;
INSERT INTO sales VALUES (3001, 'n', 9, 1, 0, '2024-03-01'), (3002, 'n', NULL, NULL, NULL, NULL);
SELECT * FROM flags ORDER BY region;
UPDATE sales SET qty = 0 WHERE id = 3001;
SELECT * FROM flags ORDER BY region;
DELETE FROM sales WHERE id = 3001;
SELECT * FROM flags ORDER BY region;
SELECT tide.verify('flags');

-- variance and standard deviation, from the count, Σx and Σx² kept as numeric
SELECT tide.create_view('spread', 'SELECT region, variance(qty) AS var, stddev(price) AS sd, var_pop(qty) AS vp, stddev_pop(price) AS sdp FROM sales GROUP BY region');
SELECT * FROM spread ORDER BY region;
INSERT INTO sales SELECT 4000 + i, (ARRAY['n','x'])[1 + i % 2], i, i * 0.37, 0, '2024-03-02' FROM generate_series(1, 9) i;
SELECT * FROM spread ORDER BY region;
SELECT region, variance(qty), stddev(price), var_pop(qty), stddev_pop(price) FROM sales GROUP BY region ORDER BY region;
DELETE FROM sales WHERE id > 4005;
SELECT * FROM spread ORDER BY region;
SELECT tide.verify('spread');

-- count(DISTINCT) and sum(DISTINCT): a count per (group, value); a value
-- counts while some row has it
SELECT tide.create_view('distinct_days', 'SELECT region, count(DISTINCT day) AS days, sum(DISTINCT qty) AS qtys, count(*) AS n FROM sales GROUP BY region');
SELECT * FROM distinct_days ORDER BY region;
INSERT INTO sales VALUES (5001, 'n', 2, 1, 0, '2024-02-01'), (5002, 'n', 7, 1, 0, '2024-05-05'), (5003, 'x', NULL, 1, 0, NULL);
SELECT * FROM distinct_days ORDER BY region;
DELETE FROM sales WHERE id = 1;
UPDATE sales SET day = '2024-05-05' WHERE id = 5001;
SELECT * FROM distinct_days ORDER BY region;
SELECT tide.verify('distinct_days');

-- a GROUP BY key that is not a column of the view: a group's row is found by
-- its old value (identical rows of different groups included)
SELECT tide.create_view('no_key', 'SELECT sum(qty) AS q, count(*) AS n, max(price) AS top FROM sales GROUP BY region, day');
SELECT * FROM no_key ORDER BY 1, 2, 3;
INSERT INTO sales VALUES (6001, 'y', 1, 1, 0, '2024-06-01'), (6002, 'z', 1, 1, 0, '2024-06-01');
SELECT q, n, top, count(*) FROM no_key GROUP BY q, n, top ORDER BY 1, 2, 3;
UPDATE sales SET qty = 2 WHERE id = 6001;
DELETE FROM sales WHERE id = 6002;
SELECT q, n, top, count(*) FROM no_key GROUP BY q, n, top ORDER BY 1, 2, 3;
SELECT tide.verify('no_key');

-- GROUPING SETS, ROLLUP, CUBE: one GROUP BY per grouping set, as the
-- branches of a UNION ALL (the columns outside a set read as NULL)
CREATE TABLE sales_gs (region text, city text, amount int);
INSERT INTO sales_gs VALUES ('n', 'a', 1), ('n', 'b', 2), ('s', 'c', 3), ('s', 'c', 4), (NULL, 'd', 5);
SELECT tide.create_view('sales_rollup', 'SELECT region, city, sum(amount) AS total, count(*) AS n, GROUPING(region, city) AS g FROM sales_gs GROUP BY ROLLUP (region, city)');
SELECT tide.create_view('sales_cube', 'SELECT region, city, count(*) AS n FROM sales_gs GROUP BY CUBE (region, city) HAVING count(*) > 1');
SELECT tide.create_view('sales_sets', 'SELECT region, city, max(amount) AS hi FROM sales_gs GROUP BY GROUPING SETS ((region), (city), ())');
SELECT * FROM sales_rollup ORDER BY g, region, city;
INSERT INTO sales_gs VALUES ('n', 'a', 10), ('e', 'x', 7);
DELETE FROM sales_gs WHERE city = 'c' AND amount = 3;
UPDATE sales_gs SET region = 's' WHERE city = 'b';
SELECT * FROM sales_rollup ORDER BY g, region, city;
SELECT * FROM sales_sets ORDER BY region, city;
SELECT tide.verify('sales_rollup'), tide.verify('sales_cube'), tide.verify('sales_sets');
TRUNCATE sales_gs;
SELECT * FROM sales_rollup;
SELECT tide.verify('sales_rollup'), tide.verify('sales_cube'), tide.verify('sales_sets');

-- arguments that cannot be NULL (NOT NULL columns under arithmetic) are
-- counted as rows by the build; the same columns read through a LEFT JOIN,
-- or under a function that may return NULL, are counted value by value
CREATE TABLE nn_parent (id int PRIMARY KEY, grp int NOT NULL);
CREATE TABLE nn_child (id int PRIMARY KEY, parent int NOT NULL, a numeric NOT NULL, b int NOT NULL, t text NOT NULL);
INSERT INTO nn_parent VALUES (1, 1), (2, 1), (3, 2);
INSERT INTO nn_child VALUES (1, 1, 2.5, 3, 'x'), (2, 1, 1, 4, ''), (3, 2, 0.5, 2, 'y');
SELECT tide.create_view('nn_inner', 'SELECT p.grp, sum(c.a * c.b) AS s, avg(c.a - 1) AS m, count(c.b + 1) AS n, count(nullif(c.t, '''')) AS texts FROM nn_parent p JOIN nn_child c ON c.parent = p.id GROUP BY p.grp');
SELECT tide.create_view('nn_outer', 'SELECT p.grp, sum(c.a * c.b) AS s, avg(c.a) AS m, count(c.b + 1) AS n FROM nn_parent p LEFT JOIN nn_child c ON c.parent = p.id GROUP BY p.grp');
SELECT * FROM nn_inner ORDER BY grp;
SELECT * FROM nn_outer ORDER BY grp;
INSERT INTO nn_child VALUES (4, 3, 10, 1, '');
DELETE FROM nn_child WHERE parent = 1;
SELECT * FROM nn_inner ORDER BY grp;
SELECT * FROM nn_outer ORDER BY grp;
SELECT tide.verify('nn_inner'), tide.verify('nn_outer');
SELECT tide.drop_view('nn_inner'), tide.drop_view('nn_outer');
DROP TABLE nn_child, nn_parent;

-- aggregates without running state (array_agg, string_agg, ordered-set
-- aggregates, bit_or, corr, DISTINCT or ORDER BY in the call, user-defined
-- aggregates): every group a change touches computes them again from the
-- base tables, restricted to the group's key
CREATE TABLE tags (id int PRIMARY KEY, grp int, tag text, n int);
INSERT INTO tags VALUES (1, 1, 'b', 4), (2, 1, 'a', 2), (3, 2, 'c', 8), (4, 2, NULL, 1), (5, 3, 'a', 3);
CREATE TABLE tag_owner (grp int PRIMARY KEY, owner text);
INSERT INTO tag_owner VALUES (1, 'ann'), (2, 'bob'), (3, 'cy');
CREATE FUNCTION longest_acc(text, text) RETURNS text LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $1 IS NULL OR (length($2), $2) > (length($1), $1) THEN $2 ELSE $1 END';
CREATE AGGREGATE longest(text) (sfunc = longest_acc, stype = text);
SELECT tide.create_view('tag_lists', 'SELECT grp, array_agg(tag ORDER BY tag) AS tags, string_agg(tag, '','' ORDER BY tag DESC) FILTER (WHERE n > 1) AS big, count(*) AS c, sum(n) AS total FROM tags GROUP BY grp');
SELECT tide.create_view('tag_stats', 'SELECT grp, percentile_cont(0.5) WITHIN GROUP (ORDER BY n) AS med, mode() WITHIN GROUP (ORDER BY tag) AS common, bit_or(n) AS bits, avg(DISTINCT n) AS dn, longest(tag) AS lt FROM tags GROUP BY grp HAVING count(*) > 1');
SELECT tide.create_view('tag_all', 'SELECT array_agg(DISTINCT tag ORDER BY tag) AS tags, corr(n, id) AS r FROM tags');
SELECT tide.create_view('tag_join', 'SELECT o.owner, string_agg(t.tag, '' '' ORDER BY t.id) AS tags FROM tags t JOIN tag_owner o ON o.grp = t.grp GROUP BY o.owner');
-- (the recomputing statement's alias for the group does not clash with a table's alias, here s)
SELECT tide.create_view('tag_alias_s', 'SELECT s.grp, max(s.n) AS top, string_agg(s.tag, '','' ORDER BY s.tag) AS tags FROM tags s GROUP BY s.grp');
SELECT * FROM tag_lists ORDER BY grp;
SELECT * FROM tag_stats ORDER BY grp;
INSERT INTO tags VALUES (6, 3, 'zzz', 16), (7, 4, 'd', 5);
UPDATE tags SET grp = 1 WHERE id = 3;
DELETE FROM tags WHERE id = 2;
UPDATE tag_owner SET owner = 'ann' WHERE grp = 3;
SELECT * FROM tag_lists ORDER BY grp;
SELECT * FROM tag_stats ORDER BY grp;
SELECT * FROM tag_all;
SELECT * FROM tag_join ORDER BY owner;
SELECT tide.verify('tag_lists'), tide.verify('tag_stats'), tide.verify('tag_all'), tide.verify('tag_join'), tide.verify('tag_alias_s');
DELETE FROM tags WHERE grp = 1;
TRUNCATE tag_owner;
SELECT * FROM tag_all;
SELECT tide.verify('tag_lists'), tide.verify('tag_stats'), tide.verify('tag_all'), tide.verify('tag_join'), tide.verify('tag_alias_s');
SELECT rule FROM tide.explain('SELECT grp, array_agg(tag ORDER BY tag) FROM tags GROUP BY grp') WHERE operator = 'Aggregate';
SELECT tide.drop_view('tag_lists'), tide.drop_view('tag_stats'), tide.drop_view('tag_all'), tide.drop_view('tag_join'), tide.drop_view('tag_alias_s');
DROP TABLE tags, tag_owner;

-- JSON constructors are STABLE in PostgreSQL's catalog because some types
-- print by settings; over types that always print the same they are
-- accepted (timestamptz, which prints by TimeZone, is not, in a row either)
CREATE TABLE events (id int PRIMARY KEY, kind text, at date, n int, ts timestamptz);
INSERT INTO events VALUES (1, 'a', '2024-01-02', 3, now()), (2, 'a', '2024-02-03', NULL, now()), (3, 'b', '2024-03-04', 5, now());
SELECT tide.create_view('event_json', 'SELECT kind, jsonb_agg(jsonb_build_object(''id'', id, ''at'', at, ''n'', n) ORDER BY id) AS items, json_object_agg(id, n ORDER BY id) AS by_id FROM events GROUP BY kind');
SELECT tide.create_view('event_rows', 'SELECT id, to_jsonb(e) - ''ts'' AS doc FROM events e');
SELECT tide.create_view('event_ts', 'SELECT id, to_json(ts) AS doc FROM events');
INSERT INTO events VALUES (4, 'b', '2024-04-05', 1, now());
UPDATE events SET kind = 'b' WHERE id = 1;
DELETE FROM events WHERE id = 3;
SELECT kind, items, by_id::text FROM event_json ORDER BY kind;
SELECT tide.verify('event_json');
SELECT tide.drop_view('event_json');
DROP TABLE events;

-- DISTINCT over GROUP BY: the groups are an internal view, the DISTINCT over its rows
CREATE TABLE visits (id int PRIMARY KEY, page text, visitor int);
INSERT INTO visits SELECT i, 'p' || (i % 5), i % 3 FROM generate_series(1, 30) i;
SELECT tide.create_view('visit_counts', 'SELECT DISTINCT count(*) AS n, count(DISTINCT visitor) AS visitors FROM visits GROUP BY page');
SELECT * FROM visit_counts ORDER BY n, visitors;
INSERT INTO visits VALUES (31, 'p1', 7), (32, 'p9', 1);
DELETE FROM visits WHERE page = 'p2' AND visitor = 0;
SELECT * FROM visit_counts ORDER BY n, visitors;
SELECT tide.verify('visit_counts');
SELECT tide.drop_view('visit_counts');
DROP TABLE visits;

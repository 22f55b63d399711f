-- Functions and VALUES in FROM: they never change themselves; a function
-- that refers to the items before it (LATERAL) is evaluated for each row of
-- the change, so unnesting arrays and JSON is maintained like a join.
CREATE SCHEMA immediate_lateral;
SET search_path = immediate_lateral, public;
CREATE TABLE docs (id int, tags text[], body jsonb);
INSERT INTO docs VALUES (1, '{a,b}', '{"items": [{"sku": "x", "n": 2}, {"sku": "y", "n": 1}]}'),
                        (2, '{b}', '{"items": []}'), (3, NULL, '{"items": [{"sku": "x", "n": 5}]}');
SELECT tide.create_view('doc_tags', 'SELECT d.id, t.tag FROM docs d, unnest(d.tags) AS t(tag)');
SELECT tide.create_view('sku_totals', $$SELECT i->>'sku' AS sku, sum((i->>'n')::int) AS n, count(*) AS lines
    FROM docs d CROSS JOIN LATERAL jsonb_array_elements(d.body->'items') AS i GROUP BY i->>'sku'$$);
SELECT tide.create_view('positions', 'SELECT d.id, t.tag, t.pos FROM docs d, unnest(d.tags) WITH ORDINALITY AS t(tag, pos)');
SELECT tide.create_view('labels', $$SELECT d.id, v.label FROM docs d JOIN (VALUES (1, 'one'), (2, 'two')) AS v(k, label) ON v.k = d.id$$);
SELECT tide.create_view('series', 'SELECT d.id, g FROM docs d, generate_series(1, d.id) g');
SELECT operator, detail, incremental FROM tide.explain('SELECT d.id, t.tag FROM docs d, unnest(d.tags) AS t(tag)') WHERE operator = 'Constant';
SELECT * FROM sku_totals ORDER BY sku;
INSERT INTO docs VALUES (4, '{c,a,c}', '{"items": [{"sku": "y", "n": 3}]}');
UPDATE docs SET tags = '{z}', body = '{"items": [{"sku": "z", "n": 1}]}' WHERE id = 1;
DELETE FROM docs WHERE id = 3;
SELECT * FROM doc_tags ORDER BY id, tag;
SELECT * FROM sku_totals ORDER BY sku;
SELECT * FROM positions ORDER BY id, pos;
SELECT tide.verify('doc_tags'), tide.verify('sku_totals'), tide.verify('positions'), tide.verify('labels'), tide.verify('series');
SELECT tide.create_view('bad', 'SELECT d.id, f.a, f.b FROM docs d, ROWS FROM (unnest(d.tags), generate_series(1, 2)) AS f(a, b)');
SELECT tide.create_view('bad', 'SELECT d.id, t.tag FROM docs d LEFT JOIN LATERAL unnest(d.tags) AS t(tag) ON true');
-- LATERAL sub-queries with ORDER BY ... LIMIT, correlated by equalities:
-- the top rows per key, as the rows of a window sub-query ranked per key
-- (an internal view recomputed by the keys a change touches)
CREATE TABLE readings (id int PRIMARY KEY, doc int, val int);
INSERT INTO readings SELECT g, g % 4, (g * 7) % 10 FROM generate_series(1, 20) g;
INSERT INTO readings VALUES (21, 1, NULL), (22, NULL, 3);
SELECT tide.create_view('top_two', $$SELECT d.id, r.val, r.rid FROM docs d,
    LATERAL (SELECT x.val, x.id AS rid FROM readings x WHERE x.doc = d.id ORDER BY x.val DESC NULLS LAST, x.id LIMIT 2) r$$);
SELECT tide.create_view('second_latest', $$SELECT d.id, r.val FROM docs d LEFT JOIN LATERAL
    (SELECT x.val FROM readings x WHERE x.doc = d.id AND x.val > 0 ORDER BY x.id DESC LIMIT 1 OFFSET 1) r ON true$$);
SELECT tide.create_view('top_sums', $$SELECT count(*) AS n, sum(r.val) AS total FROM docs d
    CROSS JOIN LATERAL (SELECT x.val FROM readings x WHERE x.doc = d.id ORDER BY x.val NULLS FIRST, x.id LIMIT 3) r$$);
SELECT * FROM top_two ORDER BY id, val DESC, rid;
SELECT * FROM second_latest ORDER BY id;
INSERT INTO readings VALUES (30, 4, 99), (31, 2, 50), (32, 2, NULL);
UPDATE readings SET val = 0 WHERE id = 5;
DELETE FROM readings WHERE id IN (2, 9);
UPDATE readings SET doc = 4 WHERE id = 13;
INSERT INTO docs VALUES (5, NULL, '{}');
SELECT * FROM top_two ORDER BY id, val DESC, rid;
SELECT * FROM second_latest ORDER BY id;
SELECT * FROM top_sums;
SELECT tide.verify('top_two'), tide.verify('second_latest'), tide.verify('top_sums');
-- a correlated scalar sub-query with ORDER BY ... LIMIT 1: a lookup among
-- the rows ranked per key
SELECT tide.create_view('latest', $$SELECT d.id, (SELECT x.val FROM readings x WHERE x.doc = d.id ORDER BY x.id DESC LIMIT 1) AS last_val,
    (SELECT x.id FROM readings x WHERE x.doc = d.id AND x.val IS NOT NULL ORDER BY x.val, x.id LIMIT 1 OFFSET 1) AS second_low FROM docs d$$);
SELECT * FROM latest ORDER BY id;
INSERT INTO readings VALUES (40, 1, 2), (41, 5, 7);
DELETE FROM readings WHERE id = 30;
UPDATE readings SET val = NULL WHERE id = 14;
SELECT * FROM latest ORDER BY id;
SELECT tide.verify('latest');
SET client_min_messages = warning;
DROP SCHEMA immediate_lateral CASCADE;
RESET client_min_messages;

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
SET client_min_messages = warning;
DROP SCHEMA immediate_lateral CASCADE;
RESET client_min_messages;

-- WITH RECURSIVE: the recursive query is one component, an internal view
-- computed again when a table it reads changes; only the difference is
-- written, so views over it (an aggregate, a join) see just that.
CREATE SCHEMA immediate_recursive;
SET search_path = immediate_recursive, public;
CREATE TABLE edges (src int, dst int);
CREATE TABLE nodes (id int, label text);
INSERT INTO edges VALUES (1, 2), (2, 3), (3, 4), (5, 6), (6, 5);
INSERT INTO nodes VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f');
SELECT tide.create_view('reach', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM edges UNION SELECT r.a, e.dst FROM r JOIN edges e ON e.src = r.b) SELECT a, b FROM r');
SELECT tide.create_view('reach_count', $$WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM edges UNION SELECT r.a, e.dst FROM r JOIN edges e ON e.src = r.b)
    SELECT n.label, count(*) AS reachable FROM r JOIN nodes n ON n.id = r.a GROUP BY n.label$$);
SELECT tide.create_view('depths', $$WITH RECURSIVE t(id, depth) AS (SELECT 1, 0 UNION ALL SELECT e.dst, t.depth + 1 FROM t JOIN edges e ON e.src = t.id WHERE t.depth < 10)
    SELECT id, depth FROM t$$);
SELECT operator, incremental FROM tide.explain('WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM edges UNION SELECT r.a, e.dst FROM r JOIN edges e ON e.src = r.b) SELECT a, b FROM r') WHERE operator = 'Recursive CTE';
SELECT * FROM reach_count ORDER BY label;
-- a new edge joins two paths; an edge goes; a cycle
INSERT INTO edges VALUES (4, 5);
SELECT * FROM reach_count ORDER BY label;
DELETE FROM edges WHERE src = 2;
UPDATE edges SET dst = 1 WHERE src = 6;
SELECT * FROM reach_count ORDER BY label;
SELECT * FROM depths ORDER BY id, depth;
SELECT tide.verify('reach'), tide.verify('reach_count'), tide.verify('depths');
UPDATE nodes SET label = 'z' WHERE id = 3;
TRUNCATE edges;
SELECT count(*) AS reachable_pairs FROM reach;
INSERT INTO edges VALUES (1, 1);
SELECT tide.verify('reach'), tide.verify('reach_count'), tide.verify('depths');
SET client_min_messages = warning;
DROP SCHEMA immediate_recursive CASCADE;
RESET client_min_messages;

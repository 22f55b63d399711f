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
-- inserts add only the rows they derive (semi-naive evaluation): the view
-- is only inserted into (a statement trigger notes each statement that
-- writes it); an update computes it again (rows found and deleted)
CREATE TABLE view_writes (op text);
CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO immediate_recursive.view_writes VALUES (TG_TABLE_NAME || ' ' || TG_OP); RETURN NULL; END $$;
CREATE TABLE g (src int, dst int);
CREATE TABLE allowed (id int);
INSERT INTO g VALUES (1, 2), (2, 3), (3, 1), (4, 5), (5, 6);
INSERT INTO allowed VALUES (1), (2), (3), (5);
SELECT tide.create_view('g_reach', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM g UNION SELECT r.a, g.dst FROM r JOIN g ON g.src = r.b) SELECT a, b FROM r');
-- a recursive term over two tables, one of them twice (two steps at a time)
SELECT tide.create_view('g_hops', $$WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM g WHERE src < 100
    UNION SELECT r.a, g2.dst FROM r JOIN g g1 ON g1.src = r.b JOIN g g2 ON g2.src = g1.dst JOIN allowed ON allowed.id = g1.dst)
    SELECT a, b FROM r$$);
CREATE TRIGGER note AFTER INSERT OR DELETE ON g_reach FOR EACH STATEMENT EXECUTE FUNCTION note_write();
INSERT INTO g VALUES (3, 4);
INSERT INTO g VALUES (1, 2);
INSERT INTO g VALUES (7, NULL), (NULL, 7), (6, 7), (7, 7);
INSERT INTO allowed VALUES (4), (6), (NULL);
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT count(*) AS pairs, count(*) FILTER (WHERE a = 1) AS from_one FROM g_reach;
SELECT tide.verify('g_reach') AND tide.verify('g_hops') AS equal;
DELETE FROM view_writes;
UPDATE g SET dst = 5 WHERE src = 3 AND dst = 4;
UPDATE allowed SET id = 9 WHERE id = 2;
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT tide.verify('g_reach') AND tide.verify('g_hops') AS equal;
-- in one statement, inserts into two of its tables
WITH more AS (INSERT INTO allowed VALUES (2) RETURNING id) INSERT INTO g SELECT 6, id FROM more;
SELECT tide.verify('g_reach') AND tide.verify('g_hops') AS equal;
-- deferred: a batch of inserts only adds rows; one with inserts and deletes computes it again
SELECT tide.create_view('g_reach_later', 'WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM g UNION SELECT r.a, g.dst FROM r JOIN g ON g.src = r.b) SELECT a, b FROM r',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
SELECT tide.wait('g_reach_later');
CREATE TRIGGER note AFTER INSERT OR DELETE ON g_reach_later FOR EACH STATEMENT EXECUTE FUNCTION note_write();
DELETE FROM view_writes;
INSERT INTO g VALUES (8, 1), (9, 8);
INSERT INTO g VALUES (2, 9);
SELECT tide.refresh('g_reach_later') > 0 AS refreshed;
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT tide.verify('g_reach_later') AS equal;
DELETE FROM view_writes;
INSERT INTO g VALUES (10, 1);
DELETE FROM g WHERE src = 2 AND dst = 9;
SELECT tide.refresh('g_reach_later') > 0 AS refreshed;
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT tide.verify('g_reach_later') AND tide.verify('g_reach') AS equal;
-- deletes: delete and derive again: the rows a deleted row derived go,
-- unless derived another way (a second path, a cycle), NULLs included; the
-- view is only deleted from
INSERT INTO g VALUES (11, 12), (12, 13), (11, 13), (13, 11), (NULL, 11), (13, NULL);
SELECT tide.refresh('g_reach_later') > 0 AS refreshed;
DELETE FROM view_writes;
DELETE FROM g WHERE src = 11 AND dst = 12;
SELECT tide.verify('g_reach') AS equal;
DELETE FROM g WHERE src = 13 AND dst = 11;
DELETE FROM g WHERE src IS NULL;
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT tide.verify('g_reach') AND tide.verify('g_hops') AS equal;
SELECT count(*) AS pairs, count(*) FILTER (WHERE a = 11) AS from_eleven, count(*) FILTER (WHERE b IS NULL) AS to_null FROM g_reach;
-- deferred: a batch of deletes only
DELETE FROM view_writes;
DELETE FROM g WHERE src = 12;
DELETE FROM g WHERE dst = 1;
SELECT tide.refresh('g_reach_later') > 0 AS refreshed;
SELECT op, count(*) FROM view_writes GROUP BY op ORDER BY op;
SELECT tide.verify('g_reach_later') AND tide.verify('g_reach') AS equal;
SET client_min_messages = warning;
DROP SCHEMA immediate_recursive CASCADE;
RESET client_min_messages;

-- Columns of a type whose operators live outside pg_catalog (a user's type,
-- or an extension's such as citext): maintenance runs with search_path
-- pinned to pg_catalog, so the statements pg_tide writes name the type's
-- equality operator with its schema. Every kind of view that matches rows,
-- groups or keys by value, under inserts, updates and deletes.
CREATE SCHEMA ut;
CREATE TYPE ut.code;
CREATE FUNCTION ut.code_in(cstring) RETURNS ut.code AS 'int4in' LANGUAGE internal STRICT IMMUTABLE;
CREATE FUNCTION ut.code_out(ut.code) RETURNS cstring AS 'int4out' LANGUAGE internal STRICT IMMUTABLE;
CREATE TYPE ut.code (LIKE = int4, INPUT = ut.code_in, OUTPUT = ut.code_out);
CREATE FUNCTION ut.code_eq(ut.code, ut.code) RETURNS bool AS 'int4eq' LANGUAGE internal STRICT IMMUTABLE;
CREATE FUNCTION ut.code_lt(ut.code, ut.code) RETURNS bool AS 'int4lt' LANGUAGE internal STRICT IMMUTABLE;
CREATE FUNCTION ut.code_cmp(ut.code, ut.code) RETURNS int AS 'btint4cmp' LANGUAGE internal STRICT IMMUTABLE;
CREATE OPERATOR ut.= (LEFTARG = ut.code, RIGHTARG = ut.code, PROCEDURE = ut.code_eq, COMMUTATOR = OPERATOR(ut.=), MERGES);
CREATE OPERATOR ut.< (LEFTARG = ut.code, RIGHTARG = ut.code, PROCEDURE = ut.code_lt);
CREATE OPERATOR CLASS ut.code_ops DEFAULT FOR TYPE ut.code USING btree AS
  OPERATOR 1 ut.<, OPERATOR 3 ut.=, FUNCTION 1 ut.code_cmp(ut.code, ut.code);
CREATE TABLE items (c ut.code, n int, fixed ut.code NOT NULL DEFAULT '0');
CREATE TABLE labels (c ut.code, label text);
-- (made with the type's schema on the path, as a user of the type would)
SET search_path = public, ut;
SELECT tide.create_view('i_bag', 'SELECT c, n, fixed FROM items');
SELECT tide.create_view('i_groups', 'SELECT c, count(*) AS k, sum(n) AS total, max(n) AS top FROM items GROUP BY c');
SELECT tide.create_view('i_fixed', 'SELECT fixed, count(*) AS k FROM items GROUP BY fixed');
SELECT tide.create_view('i_hidden', 'SELECT count(*) AS k FROM items GROUP BY c');
SELECT tide.create_view('i_distinct', 'SELECT DISTINCT c FROM items');
SELECT tide.create_view('i_count_distinct', 'SELECT n % 2 AS odd, count(DISTINCT c) AS codes FROM items GROUP BY 1');
SELECT tide.create_view('i_lists', 'SELECT c, array_agg(n ORDER BY n) AS ns FROM items GROUP BY c');
SELECT tide.create_view('i_ranked', 'SELECT c, n, rank() OVER (PARTITION BY c ORDER BY n) AS r FROM items');
SELECT tide.create_view('i_join', 'SELECT i.n, l.label FROM items i JOIN labels l ON l.c = i.c');
SELECT tide.create_view('i_left', 'SELECT i.n, l.label FROM items i LEFT JOIN labels l ON l.c = i.c');
SELECT tide.create_view('i_exists', 'SELECT n FROM items i WHERE EXISTS (SELECT 1 FROM labels l WHERE l.c = i.c)');
SELECT tide.create_view('i_union', 'SELECT c FROM items UNION SELECT c FROM labels');
SELECT tide.create_view('i_full', 'SELECT i.n, l.label FROM items i FULL JOIN labels l ON l.c = i.c');
SELECT tide.create_view('i_scalar', 'SELECT n, (SELECT count(*) FROM labels l WHERE l.c = i.c) AS labels FROM items i');
SELECT tide.create_view('i_top', 'SELECT c, n FROM items ORDER BY n DESC LIMIT 2');
RESET search_path;
CREATE FUNCTION check_items() RETURNS TABLE (view text, ok bool) LANGUAGE sql AS $$
  SELECT name::text, tide.verify(name::text) FROM tide.views WHERE name::text LIKE 'i\_%' ORDER BY 1 $$;
INSERT INTO items VALUES ('1', 1, '0'), ('1', 2, '0'), ('2', 3, '1'), (NULL, 4, '1'), ('3', 5, '7');
INSERT INTO labels VALUES ('1', 'one'), ('3', 'three'), (NULL, 'none');
SELECT count(*) AS views, bool_and(ok) AS all_equal FROM check_items();
UPDATE items SET n = n + 10 WHERE c OPERATOR(ut.=) '1';
UPDATE items SET c = '2', fixed = '2' WHERE n = 3 OR c IS NULL;
DELETE FROM labels WHERE c OPERATOR(ut.=) '1';
SELECT count(*) AS views, bool_and(ok) AS all_equal FROM check_items();
DELETE FROM items WHERE n > 10;
INSERT INTO labels VALUES ('2', 'two');
SELECT count(*) AS views, bool_and(ok) AS all_equal FROM check_items();
SELECT * FROM i_groups ORDER BY c;
SELECT * FROM i_left ORDER BY n;
SET client_min_messages = warning;
DROP TABLE items, labels CASCADE;
DROP SCHEMA ut CASCADE;
DROP FUNCTION check_items();
RESET client_min_messages;

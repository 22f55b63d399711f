-- A non-superuser creates and manages views over tables it can read; others cannot manage them.
CREATE ROLE tide_alice LOGIN;
CREATE ROLE tide_bob LOGIN;
CREATE SCHEMA alice AUTHORIZATION tide_alice;
CREATE TABLE secret (x int);
INSERT INTO secret VALUES (1);
SET ROLE tide_alice;
CREATE TABLE alice.items (x int);
INSERT INTO alice.items VALUES (1), (2);
SELECT tide.create_view('alice.item_count', 'SELECT count(*) AS n FROM alice.items');
SELECT * FROM alice.item_count;
SELECT tide.verify('alice.item_count');
-- a view over a table alice cannot read fails at build time, and leaves nothing
SELECT tide.create_view('alice.leak', 'SELECT x FROM public.secret');
SELECT to_regclass('alice.leak');
-- the catalog is read-only to users
DELETE FROM tide.catalog;
RESET ROLE;
SELECT relowner::regrole FROM pg_class WHERE oid = 'alice.item_count'::regclass;
SELECT c.relowner::regrole FROM tide.catalog t JOIN pg_class c ON c.oid = t.definition WHERE t.view = 'alice.item_count'::regclass;
GRANT USAGE ON SCHEMA alice TO tide_bob;
-- a writer with no rights on the view or on pg_tide's state: maintenance
-- runs with the view owner's rights
GRANT SELECT, INSERT, UPDATE, DELETE ON alice.items TO tide_bob;
SET ROLE tide_bob;
INSERT INTO alice.items VALUES (3), (4);
DELETE FROM alice.items WHERE x = 1;
UPDATE alice.items SET x = x + 10 WHERE x = 2;
-- bob may not read the view
SELECT * FROM alice.item_count;
RESET ROLE;
SELECT * FROM alice.item_count;
SELECT tide.verify('alice.item_count');
GRANT SELECT ON alice.item_count TO tide_bob;
SET ROLE tide_bob;
SELECT * FROM alice.item_count;
SELECT tide.refresh('alice.item_count');
SELECT tide.drop_view('alice.item_count');
RESET ROLE;
-- a new owner of the view also owns its query, and may manage it
ALTER TABLE alice.item_count OWNER TO tide_bob;
SELECT c.relowner::regrole FROM tide.catalog t JOIN pg_class c ON c.oid = t.definition WHERE t.view = 'alice.item_count'::regclass;
GRANT SELECT ON alice.items TO tide_bob;
SET ROLE tide_bob;
SELECT tide.refresh('alice.item_count');
RESET ROLE;
ALTER TABLE alice.item_count OWNER TO tide_alice;
SET ROLE tide_alice;
SELECT tide.drop_view('alice.item_count');
RESET ROLE;
-- row-level security: a view reads its tables as its owner, through the
-- policies that apply to the owner (current_user is the owner then), also
-- for rows changed by others; a change of policies rebuilds the view
CREATE TABLE alice.notes (id int, body text, author name);
ALTER TABLE alice.notes OWNER TO tide_bob;
GRANT ALL ON alice.notes TO PUBLIC;
CREATE TABLE alice.tags (id int, tag text);
ALTER TABLE alice.tags OWNER TO tide_bob;
GRANT ALL ON alice.tags TO PUBLIC;
INSERT INTO alice.notes VALUES (1, 'mine', 'tide_alice'), (2, 'his', 'tide_bob'), (3, 'public', 'nobody');
INSERT INTO alice.tags VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE POLICY own ON alice.notes FOR SELECT USING (author = current_user);
ALTER TABLE alice.notes ENABLE ROW LEVEL SECURITY;
SET ROLE tide_alice;
SELECT tide.create_view('alice.my_notes', 'SELECT id, body FROM alice.notes');
SELECT tide.create_view('alice.my_tags', 'SELECT n.id, t.tag FROM alice.notes n JOIN alice.tags t USING (id)');
SELECT tide.create_view('alice.my_count', 'SELECT count(*) AS n FROM alice.notes', mode => 'deferred', refresh_interval => '1 hour', capture => 'trigger');
SET client_min_messages = warning;
SELECT tide.wait('alice.my_count');
RESET client_min_messages;
-- outer joins are refused: the conditions would apply before the join
SELECT tide.create_view('alice.bad', 'SELECT t.tag, n.body FROM alice.tags t LEFT JOIN alice.notes n USING (id)');
RESET ROLE;
SET ROLE tide_bob;
INSERT INTO alice.notes VALUES (4, 'also mine', 'tide_alice'), (5, 'bob again', 'tide_bob');
UPDATE alice.notes SET author = 'tide_alice' WHERE id = 3;
UPDATE alice.notes SET author = 'tide_bob' WHERE id = 1;
UPDATE alice.tags SET tag = 'd' WHERE id = 4;
INSERT INTO alice.tags VALUES (4, 'd'), (5, 'e');
RESET ROLE;
SET ROLE tide_alice;
SELECT * FROM alice.my_notes ORDER BY id;
SELECT * FROM alice.my_tags ORDER BY id;
SELECT tide.refresh('alice.my_count');
SELECT tide.verify('alice.my_notes'), tide.verify('alice.my_tags'), tide.verify('alice.my_count');
RESET ROLE;
-- another policy (permissive: either one), then none, then RLS off: each rebuilds
SET ROLE tide_bob;
CREATE POLICY short ON alice.notes FOR SELECT USING (length(body) < 5);
RESET ROLE;
SELECT * FROM alice.my_notes ORDER BY id;
SELECT * FROM alice.my_count;
SET ROLE tide_bob;
DROP POLICY own ON alice.notes;
RESET ROLE;
SELECT * FROM alice.my_notes ORDER BY id;
SET ROLE tide_bob;
ALTER POLICY short ON alice.notes USING (id > 3);
INSERT INTO alice.notes VALUES (6, 'six', 'x');
RESET ROLE;
SELECT * FROM alice.my_notes ORDER BY id;
SELECT tide.refresh('alice.my_count');
SELECT tide.verify('alice.my_notes'), tide.verify('alice.my_tags'), tide.verify('alice.my_count');
SET ROLE tide_bob;
ALTER TABLE alice.notes DISABLE ROW LEVEL SECURITY;
RESET ROLE;
SELECT * FROM alice.my_notes ORDER BY id;
SELECT tide.verify('alice.my_notes'), tide.verify('alice.my_tags'), tide.verify('alice.my_count');
SET client_min_messages = warning;
DROP SCHEMA alice CASCADE;
RESET client_min_messages;
DROP ROLE tide_alice;
DROP ROLE tide_bob;
-- dropping the extension with views in place needs CASCADE
SELECT count(tide.drop_view(name::text)) > 0 AS dropped FROM tide.views;
CREATE TABLE last_base (x int);
SELECT tide.create_view('last_view', 'SELECT x FROM last_base');
\set VERBOSITY terse
DROP EXTENSION pg_tide;
SET client_min_messages = warning;
DROP EXTENSION pg_tide CASCADE;
RESET client_min_messages;
\set VERBOSITY default
SELECT to_regclass('last_view') IS NULL AS view_gone, to_regnamespace('tide_state') IS NULL AS state_gone;

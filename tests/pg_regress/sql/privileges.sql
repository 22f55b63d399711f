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
DROP SCHEMA alice CASCADE;
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

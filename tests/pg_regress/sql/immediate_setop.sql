-- UNION ALL, UNION, INTERSECT, EXCEPT at the top of a view's query (also
-- under ORDER BY ... LIMIT, and inside a sub-query). Each branch is an
-- internal view with the set operation's column names and types; the view's
-- input is their sum: a bag for UNION ALL, counts per distinct row (per side
-- for INTERSECT and EXCEPT) for the others.
CREATE SCHEMA immediate_setop;
SET search_path = immediate_setop, public;
CREATE TABLE staff (id int, name text, dept int);
CREATE TABLE contractors (cid bigint, cname text);
INSERT INTO staff VALUES (1, 'ann', 10), (2, 'bob', 10), (2, 'bob', 20), (NULL, 'nobody', NULL);
INSERT INTO contractors VALUES (2, 'bob'), (3, 'cy'), (3, 'cy'), (NULL, 'nobody');
SELECT tide.create_view('everyone', 'SELECT id, name FROM staff UNION ALL SELECT cid, cname FROM contractors');
SELECT tide.create_view('people', 'SELECT id, name FROM staff UNION SELECT cid, cname FROM contractors');
SELECT tide.create_view('both_kinds', 'SELECT id, name FROM staff INTERSECT SELECT cid, cname FROM contractors');
SELECT tide.create_view('staff_only', 'SELECT id, name FROM staff EXCEPT SELECT cid, cname FROM contractors');
SELECT tide.create_view('last_two', 'SELECT id, name FROM staff UNION SELECT cid, cname FROM contractors ORDER BY id DESC NULLS LAST, name LIMIT 2');
SELECT tide.create_view('per_name', 'SELECT name, count(*) AS n FROM (SELECT id, name FROM staff UNION ALL SELECT cid, cname FROM contractors) s GROUP BY name');
SELECT tide.create_view('both_all', 'SELECT id, name FROM staff INTERSECT ALL SELECT cid, cname FROM contractors');
SELECT tide.create_view('staff_all', 'SELECT id, name FROM staff EXCEPT ALL SELECT cid, cname FROM contractors');
SELECT pg_typeof(id) AS union_type FROM everyone LIMIT 1;
SELECT operator, incremental, rule FROM tide.explain('SELECT id, name FROM staff INTERSECT SELECT cid, cname FROM contractors') WHERE operator = 'INTERSECT';
SELECT * FROM everyone ORDER BY id, name;
SELECT * FROM people ORDER BY id, name;
SELECT * FROM both_kinds ORDER BY id, name;
SELECT * FROM staff_only ORDER BY id, name;
INSERT INTO contractors VALUES (1, 'ann'), (5, 'eve');
DELETE FROM staff WHERE id = 2;
UPDATE contractors SET cname = 'nobody at all' WHERE cid IS NULL;
INSERT INTO staff VALUES (5, 'eve', 30), (9, 'ivy', 30);
SELECT * FROM people ORDER BY id, name;
SELECT * FROM both_kinds ORDER BY id, name;
SELECT * FROM staff_only ORDER BY id, name;
SELECT * FROM last_two ORDER BY id DESC;
SELECT * FROM both_all ORDER BY id, name;
SELECT * FROM staff_all ORDER BY id, name;
SELECT tide.verify('both_all'), tide.verify('staff_all');
SELECT tide.verify('everyone'), tide.verify('people'), tide.verify('both_kinds'), tide.verify('staff_only'),
       tide.verify('last_two'), tide.verify('per_name');
-- one statement on both sides, rollback, TRUNCATE
WITH moved AS (DELETE FROM staff WHERE id = 9 RETURNING id, name) INSERT INTO contractors SELECT id, name FROM moved;
BEGIN;
DELETE FROM contractors;
SELECT count(*) AS intersect_now FROM both_kinds;
ROLLBACK;
TRUNCATE contractors;
SELECT * FROM staff_only ORDER BY id, name;
SELECT tide.verify('both_all'), tide.verify('staff_all');
SELECT tide.verify('everyone'), tide.verify('people'), tide.verify('both_kinds'), tide.verify('staff_only'),
       tide.verify('last_two'), tide.verify('per_name');
-- nested otherwise: the inner operation is a branch of its own (an internal
-- view that maintains it), with the types the outer one resolves
SELECT tide.create_view('mixed', 'SELECT id FROM staff UNION ALL (SELECT cid FROM contractors EXCEPT SELECT id FROM staff)');
SELECT tide.create_view('mixed_left', 'SELECT id, name FROM staff UNION SELECT cid, cname FROM contractors EXCEPT SELECT id, name FROM staff WHERE dept = 20');
SELECT tide.create_view('mixed_all', '(SELECT name FROM staff INTERSECT ALL SELECT cname FROM contractors) UNION ALL (SELECT cname FROM contractors EXCEPT ALL SELECT name FROM staff)');
SELECT * FROM mixed ORDER BY id;
INSERT INTO contractors VALUES (7, 'dee'), (1, 'ann'), (NULL, 'nobody');
DELETE FROM staff WHERE dept = 20;
UPDATE contractors SET cid = 9 WHERE cname = 'cy';
INSERT INTO staff VALUES (7, 'dee', 30);
SELECT * FROM mixed ORDER BY id;
SELECT * FROM mixed_left ORDER BY id, name;
SELECT * FROM mixed_all ORDER BY name;
SELECT tide.verify('mixed'), tide.verify('mixed_left'), tide.verify('mixed_all');
SET client_min_messages = warning;
DROP SCHEMA immediate_setop CASCADE;
RESET client_min_messages;

-- verify compares the view with its query as multisets, both ways.
CREATE TABLE vt (id int, doc json, p point, tags text[]);
INSERT INTO vt VALUES (1, '{"x":1}', '(1,2)', '{a}'), (1, '{"x":1}', '(1,2)', '{a}'), (2, NULL, NULL, NULL);
-- json and point have no equality operator: compared through their text form
SELECT tide.create_view('vt_all', 'SELECT id, doc, p, tags FROM vt');
SELECT tide.verify('vt_all');
-- maintained through changes of such columns
DELETE FROM vt WHERE ctid = (SELECT min(ctid) FROM vt WHERE id = 1);
SELECT tide.verify('vt_all');
-- changes pg_tide cannot see: one copy of a duplicate row missing is a difference
SET session_replication_role = replica;
DELETE FROM vt WHERE id = 1;
RESET session_replication_role;
SELECT tide.verify('vt_all');
SELECT tide.refresh('vt_all', full => true);
SELECT tide.verify('vt_all');
-- an extra row, and a changed row
SET session_replication_role = replica;
INSERT INTO vt VALUES (3, '[]', '(0,0)', '{}');
UPDATE vt SET doc = '{"x":2}' WHERE id = 2;
RESET session_replication_role;
SELECT tide.verify('vt_all');
-- damage done behind pg_tide's back is found
SELECT tide.refresh('vt_all', full => true);
ALTER TABLE vt_all DISABLE TRIGGER tide_guard;
DELETE FROM vt_all WHERE id = 3;
ALTER TABLE vt_all ENABLE TRIGGER tide_guard;
SELECT tide.verify('vt_all');
-- more than 10 differences: the NOTICE shows 10
CREATE TABLE many (i int);
SELECT tide.create_view('many_v', 'SELECT i FROM many');
SET session_replication_role = replica;
INSERT INTO many SELECT generate_series(1, 25);
RESET session_replication_role;
SELECT tide.verify('many_v');

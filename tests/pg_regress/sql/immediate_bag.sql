-- Immediate maintenance of views without GROUP BY: filter, project, a bag of rows.
CREATE SCHEMA immediate_bag;
SET search_path = immediate_bag, public;
CREATE TABLE items (id int, cat text, price numeric(8,2), doc json, tags text[]);
INSERT INTO items VALUES (1, 'a', 10, '{"x":1}', '{red}'), (2, 'a', 10, '{"x":1}', '{red}'), (3, 'b', NULL, NULL, NULL);
SELECT tide.create_view('cheap', 'SELECT cat, price, doc, tags FROM items WHERE price IS NULL OR price < 20');
SELECT * FROM cheap ORDER BY cat, price;
-- insert: duplicates keep their multiplicity
INSERT INTO items VALUES (4, 'a', 10, '{"x":1}', '{red}'), (5, 'c', 30, '[]', '{}');
SELECT cat, price, count(*) FROM cheap GROUP BY cat, price ORDER BY 1, 2;
SELECT tide.verify('cheap');
-- delete one copy of three identical rows
DELETE FROM items WHERE id = 2;
SELECT cat, price, count(*) FROM cheap GROUP BY cat, price ORDER BY 1, 2;
SELECT tide.verify('cheap');
-- update into and out of the filter, and of json columns
UPDATE items SET price = 5 WHERE id = 5;
UPDATE items SET price = 99 WHERE id = 1;
UPDATE items SET doc = '{"y":2}' WHERE id = 4;
SELECT * FROM cheap ORDER BY cat, price;
SELECT tide.verify('cheap');
-- an update of a column the view does not read changes nothing
UPDATE items SET id = id + 100;
SELECT tide.verify('cheap');
-- NULLs everywhere
INSERT INTO items VALUES (NULL, NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL, NULL);
DELETE FROM items WHERE cat IS NULL AND id IS NULL AND ctid = (SELECT min(ctid) FROM items WHERE cat IS NULL);
SELECT count(*) FROM cheap WHERE cat IS NULL;
SELECT tide.verify('cheap');
-- a multi-row mixed statement: INSERT ... ON CONFLICT updating some rows, inserting others
CREATE UNIQUE INDEX ON items (id);
INSERT INTO items VALUES (101, 'z', 1, NULL, NULL), (777, 'n', 2, NULL, NULL)
  ON CONFLICT (id) DO UPDATE SET cat = excluded.cat, price = excluded.price;
SELECT * FROM cheap ORDER BY cat NULLS FIRST, price;
SELECT tide.verify('cheap');
-- rollback and savepoints leave the view consistent
BEGIN;
DELETE FROM items;
SELECT count(*) FROM cheap;
ROLLBACK;
SELECT tide.verify('cheap');
BEGIN;
INSERT INTO items VALUES (900, 's', 1, NULL, NULL);
SAVEPOINT sp;
DELETE FROM items WHERE cat = 'a';
UPDATE items SET price = 3 WHERE id = 900;
ROLLBACK TO SAVEPOINT sp;
INSERT INTO items VALUES (901, 's', 2, NULL, NULL);
COMMIT;
SELECT cat, price FROM cheap WHERE cat = 's' ORDER BY price;
SELECT tide.verify('cheap');
-- TRUNCATE empties the view
TRUNCATE items;
SELECT count(*) FROM cheap;
SELECT tide.verify('cheap');
INSERT INTO items VALUES (1, 'a', 1, NULL, NULL);
SELECT tide.verify('cheap');
-- a large statement is maintained in one pass
INSERT INTO items SELECT i, 'bulk', i % 50, NULL, NULL FROM generate_series(1000, 60999) i;
SELECT count(*) FROM cheap;
UPDATE items SET price = price + 1 WHERE cat = 'bulk';
DELETE FROM items WHERE cat = 'bulk' AND id % 3 = 0;
SELECT count(*) FROM cheap;
SELECT tide.verify('cheap');
-- MERGE (insert, update and delete in one statement) and COPY
CREATE TABLE src (id int, cat text, price numeric);
INSERT INTO src VALUES (1, 'm', 1), (1000, NULL, NULL), (5000000, 'new', 2);
MERGE INTO items i USING src s ON i.id = s.id
  WHEN MATCHED AND s.price IS NULL THEN DELETE
  WHEN MATCHED THEN UPDATE SET cat = s.cat, price = s.price
  WHEN NOT MATCHED THEN INSERT (id, cat, price) VALUES (s.id, s.cat, s.price);
SELECT tide.verify('cheap');
COPY items (id, cat, price) FROM stdin;
7000000	copied	3
7000001	\N	\N
\.
SELECT cat, price FROM cheap WHERE cat IN ('m', 'new', 'copied') OR price IS NULL ORDER BY cat, price;
SELECT tide.verify('cheap');

-- a statement deleting many distinct rows takes a bounded number of locks
-- (one per hash bucket), not one per row, which would exhaust the lock table
CREATE TABLE many (x int, y int);
INSERT INTO many SELECT i, i % 10 FROM generate_series(1, 20000) i;
SELECT tide.create_view('many_rows', 'SELECT x, y FROM many WHERE y < 8');
BEGIN;
DELETE FROM many WHERE x % 2 = 0;
SELECT count(*) <= 64 AS bounded FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
UPDATE many SET x = x + 1 WHERE y = 3;
SELECT count(*) FROM many_rows;
SELECT tide.verify('many_rows');
SELECT tide.drop_view('many_rows');
DROP TABLE many;

-- columns that cannot be NULL are matched with a plain = (one index scan);
-- once the column may be NULL again, rows with NULL are found too
CREATE TABLE strict_rows (id int NOT NULL, pair int NOT NULL, note text);
INSERT INTO strict_rows SELECT i % 50, i, NULL FROM generate_series(1, 200) i;
SELECT tide.create_view('strict_bag', 'SELECT s.id, s.pair * 2 AS twice, s.note FROM strict_rows s JOIN strict_rows t ON t.pair = s.pair');
SELECT tide.create_view('strict_groups', 'SELECT id, count(*) AS n FROM strict_rows GROUP BY id');
UPDATE strict_rows SET note = 'x' WHERE id < 5;
DELETE FROM strict_rows WHERE id = 7;
SELECT tide.verify('strict_bag') AND tide.verify('strict_groups') AS equal;
ALTER TABLE strict_rows ALTER COLUMN id DROP NOT NULL, ALTER COLUMN pair DROP NOT NULL;
INSERT INTO strict_rows VALUES (NULL, 1000, 'n'), (NULL, NULL, 'nn'), (3, NULL, NULL);
SELECT tide.verify('strict_bag') AND tide.verify('strict_groups') AS equal;
DELETE FROM strict_rows WHERE id IS NULL OR pair IS NULL;
UPDATE strict_rows SET id = NULL WHERE id = 3;
SELECT count(*) FILTER (WHERE id IS NULL) AS null_rows FROM strict_bag;
SELECT tide.verify('strict_bag') AND tide.verify('strict_groups') AS equal;
UPDATE strict_rows SET id = 3 WHERE id IS NULL;
SELECT tide.verify('strict_bag') AND tide.verify('strict_groups') AS equal;
SELECT tide.drop_view('strict_bag'), tide.drop_view('strict_groups');
DROP TABLE strict_rows;

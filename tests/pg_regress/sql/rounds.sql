-- A view that reads a table and internal views over the same table (its
-- sub-queries) is maintained in steps: from the table's change against the
-- internal views' old states, then from each internal view's change. These
-- cases change such views by single statements, by statements changing
-- several of their tables at once (writable CTE, ON DELETE CASCADE), with
-- savepoints rolled back between steps, with TRUNCATE, and by deferred
-- refreshes of mixed batches; every view is checked after each. Last,
-- statements that a user's row trigger runs inside another statement.
CREATE SCHEMA rounds;
SET search_path = rounds, public;
CREATE TABLE orders (id int PRIMARY KEY, status text);
CREATE TABLE lines (order_id int REFERENCES orders ON DELETE CASCADE, supplier int, late bool);
INSERT INTO orders SELECT i, CASE WHEN i % 3 = 0 THEN 'open' ELSE 'done' END FROM generate_series(1, 12) i;
INSERT INTO lines SELECT 1 + i % 12, i % 5, i % 7 = 0 FROM generate_series(1, 40) i;
-- TPC-H Q21's shape: late lines of done orders where another supplier
-- shipped too but none of the others was late, counted per supplier
CREATE FUNCTION waiting_query() RETURNS text LANGUAGE sql AS $$
SELECT $q$SELECT l1.supplier, count(*) AS waiting FROM lines l1, orders o
  WHERE o.id = l1.order_id AND o.status = 'done' AND l1.late
    AND EXISTS (SELECT 1 FROM lines l2 WHERE l2.order_id = l1.order_id AND l2.supplier <> l1.supplier)
    AND NOT EXISTS (SELECT 1 FROM lines l3 WHERE l3.order_id = l1.order_id AND l3.supplier <> l1.supplier AND l3.late)
  GROUP BY l1.supplier$q$ $$;
SELECT tide.create_view('waiting', waiting_query());
SELECT tide.create_view('waiting_top', waiting_query() || ' ORDER BY waiting DESC, supplier LIMIT 2');
SELECT tide.create_view('waiting_lines', $$SELECT l1.order_id, l1.supplier FROM lines l1
  WHERE l1.late AND l1.order_id IN (SELECT id FROM orders WHERE status = 'done')
    AND NOT EXISTS (SELECT 1 FROM lines l3 WHERE l3.order_id = l1.order_id AND l3.supplier <> l1.supplier AND l3.late)$$);
CREATE FUNCTION check_all() RETURNS TABLE (waiting bool, waiting_top bool, waiting_lines bool) LANGUAGE sql AS $$
  SELECT tide.verify('rounds.waiting'), tide.verify('rounds.waiting_top'), tide.verify('rounds.waiting_lines') $$;
SELECT * FROM waiting ORDER BY supplier;
-- single statements
INSERT INTO lines VALUES (1, 7, true), (2, 7, false), (3, 8, true);
UPDATE lines SET late = NOT late WHERE supplier = 2;
DELETE FROM lines WHERE supplier = 3 AND order_id < 6;
UPDATE orders SET status = 'done' WHERE id = 3;
SELECT * FROM check_all();
-- one statement changing the orders and the lines
WITH o AS (INSERT INTO orders VALUES (13, 'done'), (14, 'done') RETURNING id)
INSERT INTO lines SELECT id, s, s = 1 FROM o, generate_series(1, 3) s;
WITH moved AS (DELETE FROM lines WHERE order_id = 5 RETURNING supplier, late)
UPDATE orders SET status = 'open' WHERE id IN (SELECT 4 + count(*) % 2 FROM moved);
SELECT * FROM check_all();
-- ON DELETE CASCADE: the lines' statement runs inside the orders' one
DELETE FROM orders WHERE id IN (1, 13);
SELECT * FROM check_all();
-- several statements in a transaction, a savepoint rolled back among them
BEGIN;
INSERT INTO lines VALUES (2, 9, true), (4, 9, true);
SAVEPOINT s;
UPDATE lines SET supplier = 1 WHERE supplier = 9;
DELETE FROM orders WHERE id = 2;
ROLLBACK TO SAVEPOINT s;
UPDATE orders SET status = 'done' WHERE id = 6;
SAVEPOINT t;
INSERT INTO lines VALUES (6, 4, false);
RELEASE SAVEPOINT t;
COMMIT;
SELECT * FROM check_all();
-- TRUNCATE rebuilds, later statements of the transaction are applied after it
BEGIN;
TRUNCATE lines;
INSERT INTO lines SELECT 1 + i % 14, i % 4, i % 3 = 0 FROM generate_series(1, 30) i WHERE 1 + i % 14 IN (SELECT id FROM orders);
UPDATE lines SET late = true WHERE supplier = 0;
COMMIT;
SELECT * FROM check_all();
SELECT * FROM waiting ORDER BY supplier;
SELECT * FROM waiting_top ORDER BY waiting DESC, supplier;
-- deferred: a batch of changes to both tables, refreshed at once
SELECT tide.alter_view('waiting', mode => 'deferred', refresh_interval => '1 hour');
SELECT tide.alter_view('waiting_lines', mode => 'deferred', refresh_interval => '1 hour');
INSERT INTO orders VALUES (20, 'done'), (21, 'open');
INSERT INTO lines VALUES (20, 1, true), (20, 2, false), (21, 1, true), (3, 6, true);
UPDATE lines SET late = NOT late WHERE order_id IN (3, 4);
DELETE FROM lines WHERE supplier = 2 AND order_id > 8;
UPDATE orders SET status = 'open' WHERE id = 7;
SELECT tide.refresh('waiting') AS waiting_rows, tide.refresh('waiting_lines') AS line_rows;
SELECT * FROM check_all();
SELECT * FROM waiting ORDER BY supplier;
-- statements a user's row trigger runs inside another statement: their
-- AFTER triggers fire before the outer one's, whose rows the views do not
-- have yet (a bag view would delete rows it has not got)
CREATE TABLE counters (id int, grp int);
CREATE FUNCTION counters_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE counters SET id = id + 10, grp = grp + 1 WHERE grp = NEW.grp;
  RETURN NULL;
END $$;
CREATE TRIGGER counters_bump AFTER INSERT ON counters FOR EACH ROW WHEN (NEW.id < 100) EXECUTE FUNCTION counters_bump();
CREATE FUNCTION counters_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM counters WHERE grp = NEW.grp;
  RETURN NEW;
END $$;
CREATE TRIGGER counters_purge BEFORE INSERT ON counters FOR EACH ROW WHEN (NEW.id >= 100) EXECUTE FUNCTION counters_purge();
SELECT tide.create_view('counter_rows', 'SELECT id, grp FROM counters');
SELECT tide.create_view('counter_groups', 'SELECT grp, count(*) AS n, sum(id) AS total, max(id) AS top FROM counters GROUP BY grp');
SELECT tide.create_view('counter_orders', 'SELECT c.id, o.status FROM counters c JOIN orders o ON o.id = c.grp');
INSERT INTO counters VALUES (1, 1);
INSERT INTO counters VALUES (2, 2), (3, 2), (4, 5);
INSERT INTO counters VALUES (100, 3), (5, 4);
SELECT * FROM counter_rows ORDER BY id;
SELECT * FROM counter_groups ORDER BY grp;
SELECT tide.verify('counter_rows') AS counter_rows, tide.verify('counter_groups') AS counter_groups,
       tide.verify('counter_orders') AS counter_orders;
SET client_min_messages = warning;
DROP SCHEMA rounds CASCADE;
RESET client_min_messages;

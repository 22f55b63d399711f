-- Outer joins: LEFT, RIGHT, FULL, mixed with inner joins, under aggregates,
-- with conditions on one side, NULL join keys, rows moving between matched
-- and unmatched. A LEFT or RIGHT join that pads one table is a lookup;
-- others are maintained as terms (the inner join, the padded rows of a
-- side, minus those with a match found through the side's keys).
CREATE SCHEMA immediate_outer;
SET search_path = immediate_outer, public;
CREATE TABLE customers (id int, name text);
CREATE TABLE orders (id int, customer_id int, amount numeric, note text);
INSERT INTO customers VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'), (NULL, 'nobody');
INSERT INTO orders VALUES (10, 1, 5, 'ok'), (11, 1, 7, 'gift'), (12, 2, 3, 'ok'), (13, NULL, 1, 'ok'), (14, 9, 2, 'ok');
SELECT tide.create_view('with_orders', 'SELECT c.name, o.id AS order_id, o.amount FROM customers c LEFT JOIN orders o ON o.customer_id = c.id');
SELECT tide.create_view('per_customer', $$SELECT c.name, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total, max(o.amount) AS biggest
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.note <> 'gift' GROUP BY c.name$$);
SELECT tide.create_view('orphans', 'SELECT o.id, c.name FROM customers c RIGHT JOIN orders o ON c.id = o.customer_id WHERE c.id IS NULL');
SELECT tide.create_view('both_sides', 'SELECT c.id AS customer, o.id AS order_id FROM customers c FULL JOIN orders o ON o.customer_id = c.id');
SELECT tide.create_view('silent', 'SELECT c.name FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL');
-- TPC-H Q13's shape: the distribution of customers by number of orders
SELECT tide.create_view('distribution', $$SELECT n, count(*) AS customers FROM
    (SELECT c.id, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.note NOT LIKE '%gift%' GROUP BY c.id) x
    GROUP BY n$$);
SELECT * FROM with_orders ORDER BY name, order_id;
SELECT * FROM per_customer ORDER BY name;
SELECT * FROM orphans ORDER BY id;
SELECT * FROM both_sides ORDER BY customer, order_id;
SELECT * FROM silent ORDER BY name;
SELECT * FROM distribution ORDER BY n;
SELECT operator, incremental, rule FROM tide.explain('SELECT c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id') WHERE operator = 'Left Join';
-- a customer gets a first order, another loses its last one, an order moves,
-- an order's key becomes NULL, a new customer matches an orphan order
INSERT INTO orders VALUES (15, 3, 4, 'ok');
DELETE FROM orders WHERE id = 12;
UPDATE orders SET customer_id = 2 WHERE id = 11;
UPDATE orders SET customer_id = NULL WHERE id = 10;
INSERT INTO customers VALUES (9, 'ivy');
SELECT * FROM with_orders ORDER BY name, order_id;
SELECT * FROM per_customer ORDER BY name;
SELECT * FROM orphans ORDER BY id;
SELECT * FROM silent ORDER BY name;
SELECT * FROM distribution ORDER BY n;
SELECT tide.verify('with_orders'), tide.verify('per_customer'), tide.verify('orphans'), tide.verify('both_sides'), tide.verify('silent'), tide.verify('distribution');
-- the kept side changes: a matched customer leaves, the unmatched stay
DELETE FROM customers WHERE id = 2;
UPDATE customers SET id = 3 WHERE name = 'nobody';
SELECT * FROM with_orders ORDER BY name, order_id;
SELECT tide.verify('with_orders'), tide.verify('per_customer'), tide.verify('orphans'), tide.verify('both_sides'), tide.verify('silent'), tide.verify('distribution');
-- both sides in one statement, rollback, savepoint, TRUNCATE
WITH gone AS (DELETE FROM customers WHERE id = 3 RETURNING id)
INSERT INTO orders SELECT 100 + id, id, 1, 'ok' FROM gone;
BEGIN;
DELETE FROM orders;
SELECT count(*) AS unmatched FROM with_orders WHERE order_id IS NULL;
ROLLBACK;
BEGIN;
INSERT INTO customers VALUES (4, 'dee');
SAVEPOINT s;
INSERT INTO orders VALUES (16, 4, 9, 'ok');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM per_customer ORDER BY name;
SELECT tide.verify('with_orders'), tide.verify('per_customer'), tide.verify('orphans'), tide.verify('both_sides'), tide.verify('silent'), tide.verify('distribution');
TRUNCATE orders;
SELECT * FROM distribution ORDER BY n;
SELECT tide.verify('with_orders'), tide.verify('per_customer'), tide.verify('orphans'), tide.verify('both_sides'), tide.verify('silent'), tide.verify('distribution');
INSERT INTO orders VALUES (20, 4, 1, 'ok'), (21, 4, 2, 'gift'), (22, 5, 3, 'ok');
SELECT tide.verify('with_orders'), tide.verify('per_customer'), tide.verify('orphans'), tide.verify('both_sides'), tide.verify('silent'), tide.verify('distribution');
-- an outer join mixed with inner joins, and two outer joins in a row
CREATE TABLE regions (customer_id int, region text);
INSERT INTO regions VALUES (4, 'north'), (9, 'south'), (9, 'east');
SELECT tide.create_view('chain', $$SELECT c.name, o.id AS order_id, r.region FROM customers c
    JOIN regions r ON r.customer_id = c.id LEFT JOIN orders o ON o.customer_id = c.id$$);
SELECT tide.create_view('two_outer', $$SELECT c.name, o.id AS order_id, r.region FROM customers c
    LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN regions r ON r.customer_id = c.id$$);
INSERT INTO orders VALUES (23, 9, 5, 'ok');
DELETE FROM regions WHERE region = 'east';
INSERT INTO regions VALUES (4, 'west');
SELECT * FROM two_outer ORDER BY name, order_id, region;
SELECT tide.verify('chain'), tide.verify('two_outer');
-- lookups (a LEFT JOIN padding one table): a self-lookup, a chain through a
-- looked-up column, a function after the lookup reading its columns, a key
-- expression; looked-up rows gain and lose their last match
CREATE TABLE staff (id int, boss int, dept int, pay int);
INSERT INTO staff VALUES (1, NULL, 1, 10), (2, 1, 1, 5), (3, 1, 2, 6), (4, 2, 2, 3);
SELECT tide.create_view('bosses', 'SELECT s.id, b.id AS boss_id, b.pay AS boss_pay FROM staff s LEFT JOIN staff b ON b.id = s.boss');
SELECT tide.create_view('grand', 'SELECT s.id, b.id AS boss_id, g.id AS grand_id FROM staff s LEFT JOIN staff b ON b.id = s.boss LEFT JOIN staff g ON g.id = b.boss');
SELECT tide.create_view('per_pay', $$SELECT s.id, x FROM staff s LEFT JOIN staff b ON b.id = s.boss, generate_series(1, coalesce(b.pay, 0) % 3) AS x$$);
SELECT tide.create_view('next_dept', 'SELECT s.id, o.id AS order_id FROM staff s LEFT JOIN orders o ON o.customer_id = s.dept + 3');
SELECT * FROM grand ORDER BY id;
SELECT * FROM per_pay ORDER BY id, x;
UPDATE staff SET boss = 3 WHERE id = 4;
DELETE FROM staff WHERE id = 1;
INSERT INTO staff VALUES (1, 3, 2, 8), (5, 5, 1, 4);
UPDATE staff SET pay = pay + 1;
INSERT INTO orders VALUES (30, 4, 1, 'ok'), (31, 5, 2, 'ok');
SELECT * FROM grand ORDER BY id;
SELECT * FROM per_pay ORDER BY id, x;
SELECT * FROM next_dept ORDER BY id, order_id;
SELECT tide.verify('bosses'), tide.verify('grand'), tide.verify('per_pay'), tide.verify('next_dept');
DELETE FROM staff WHERE id IN (3, 5);
DELETE FROM orders WHERE customer_id = 4;
SELECT * FROM bosses ORDER BY id;
SELECT * FROM next_dept ORDER BY id, order_id;
SELECT tide.verify('bosses'), tide.verify('grand'), tide.verify('per_pay'), tide.verify('next_dept');
-- a lookup on other conditions: per row of the kept side
SELECT tide.create_view('cheaper', 'SELECT c.name, o.id AS order_id FROM customers c LEFT JOIN orders o ON o.amount < c.id AND o.note = ''ok''');
SELECT tide.create_view('either', $$SELECT c.name, count(o.id) AS n FROM customers c RIGHT JOIN orders o ON o.customer_id = c.id OR o.amount > 5 GROUP BY c.name$$);
SELECT operator, rule FROM tide.explain('SELECT c.name FROM customers c LEFT JOIN orders o ON o.amount < c.id') WHERE operator = 'Left Join';
INSERT INTO orders VALUES (40, 1, 1, 'ok'), (41, 7, 9, 'ok');
UPDATE orders SET amount = amount + 2 WHERE id = 20;
DELETE FROM orders WHERE id = 22;
INSERT INTO customers VALUES (7, 'gus');
UPDATE customers SET id = 1 WHERE name = 'dee';
SELECT * FROM cheaper ORDER BY name, order_id;
SELECT * FROM either ORDER BY name;
SELECT tide.verify('cheaper'), tide.verify('either');
DELETE FROM orders WHERE amount < 3;
SELECT tide.verify('cheaper'), tide.verify('either');
-- conditions that are not equalities between the sides are refused, naming
-- the join, where the padded side is not one table (or under FULL joins)
SELECT tide.create_view('bad', 'SELECT c.name FROM customers c FULL JOIN orders o ON o.amount > c.id');
SELECT tide.create_view('bad', 'SELECT c.name FROM customers c LEFT JOIN (orders o JOIN regions r ON r.customer_id = o.customer_id) ON o.customer_id = c.id OR o.amount > 5');
-- a LEFT JOIN of one table is a lookup: no internal view; a FULL join keeps
-- each side's join keys as internal views, which go with the view
SELECT v.view, count(c.id) AS internal_views FROM tide.catalog v LEFT JOIN tide.catalog c ON c.parent = v.id
 WHERE v.view IN ('with_orders'::regclass, 'both_sides'::regclass) GROUP BY v.view ORDER BY v.view::text;
SELECT id AS both_sides_id FROM tide.catalog WHERE view = 'both_sides'::regclass \gset
SELECT tide.drop_view('both_sides');
SELECT count(*) AS left_behind FROM tide.catalog WHERE parent = :both_sides_id;
SELECT tide.drop_view('with_orders');
SET client_min_messages = warning;
DROP SCHEMA immediate_outer CASCADE;
RESET client_min_messages;
SELECT count(*) AS orphans_left FROM tide.catalog c WHERE c.parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tide.catalog p WHERE p.id = c.parent);

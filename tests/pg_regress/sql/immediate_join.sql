-- Immediate maintenance of inner joins: two-way, three-way, self-joins, cross joins, NULL keys.
CREATE SCHEMA immediate_join;
SET search_path = immediate_join, public;
CREATE TABLE customers (id int, name text, country text);
CREATE TABLE orders (id int, customer_id int, amount numeric);
CREATE TABLE countries (code text, continent text);
INSERT INTO customers VALUES (1, 'ann', 'fr'), (2, 'bob', 'de'), (3, 'cy', NULL), (NULL, 'nobody', 'fr');
INSERT INTO orders VALUES (10, 1, 5), (11, 1, 7), (12, 2, 3), (13, NULL, 1), (14, 9, 2);
INSERT INTO countries VALUES ('fr', 'europe'), ('de', 'europe'), ('us', 'america');
SELECT tide.create_view('order_names', 'SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id');
SELECT tide.create_view('per_continent',
  'SELECT k.continent, count(*) AS n, sum(o.amount) AS total
     FROM orders o JOIN customers c ON c.id = o.customer_id JOIN countries k ON k.code = c.country
    GROUP BY k.continent');
SELECT * FROM order_names ORDER BY id;
SELECT * FROM per_continent ORDER BY continent;
-- changes on each side; NULL join keys never match
INSERT INTO orders VALUES (15, 3, 4), (16, NULL, 8);
INSERT INTO customers VALUES (9, 'ivy', 'us');
UPDATE customers SET country = 'de' WHERE name = 'ann';
DELETE FROM orders WHERE id = 12;
UPDATE orders SET customer_id = 2 WHERE id = 11;
SELECT * FROM order_names ORDER BY id;
SELECT * FROM per_continent ORDER BY continent;
SELECT tide.verify('order_names'), tide.verify('per_continent');
UPDATE countries SET continent = 'eurasia' WHERE code = 'de';
DELETE FROM customers WHERE id = 1;
SELECT * FROM per_continent ORDER BY continent;
SELECT tide.verify('order_names'), tide.verify('per_continent');
-- join conditions with any immutable expression, and a cross join with a filter
SELECT tide.create_view('near', 'SELECT o.id AS o, p.id AS p FROM orders o, orders p WHERE abs(o.amount - p.amount) <= 1 AND o.id < p.id');
SELECT * FROM near ORDER BY 1, 2;
-- a self-join: one statement changes both inputs at once (the ΔA⋈ΔA term)
INSERT INTO orders VALUES (20, 2, 100), (21, 2, 100.5);
SELECT * FROM near WHERE o >= 20 OR p >= 20 ORDER BY 1, 2;
UPDATE orders SET amount = amount + 0.5;
DELETE FROM orders WHERE id IN (20, 13);
SELECT tide.verify('near');
-- a statement that changes two inputs of a view: a writable CTE
WITH gone AS (DELETE FROM customers WHERE id = 2 RETURNING id)
INSERT INTO orders SELECT 30, id, 1 FROM gone;
SELECT tide.verify('order_names'), tide.verify('per_continent'), tide.verify('near');
-- ON DELETE CASCADE: the parent's and the child's triggers in one statement
CREATE TABLE parent (id int PRIMARY KEY, label text);
CREATE TABLE child (id int, parent_id int REFERENCES parent ON DELETE CASCADE, v int);
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30);
SELECT tide.create_view('family', 'SELECT p.label, sum(c.v) AS total, count(*) AS n FROM parent p JOIN child c ON c.parent_id = p.id GROUP BY p.label');
DELETE FROM parent WHERE id = 1;
SELECT * FROM family;
SELECT tide.verify('family');
-- a user trigger that changes another input
CREATE FUNCTION add_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO child SELECT n.id * 10, n.id, 1 FROM new_rows n;
  RETURN NULL;
END $$;
CREATE TRIGGER parent_adds_child AFTER INSERT ON parent REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION add_child();
INSERT INTO parent VALUES (3, 'three'), (4, 'four');
SELECT * FROM family ORDER BY label;
SELECT tide.verify('family');
-- TRUNCATE of one input
TRUNCATE countries;
SELECT * FROM per_continent;
SELECT tide.verify('per_continent');

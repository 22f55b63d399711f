-- Sub-queries in expressions: EXISTS, NOT EXISTS, IN (also over a grouped
-- sub-query), uncorrelated scalar sub-queries, correlated scalar sub-queries
-- compared in WHERE (TPC-H Q2, Q17, Q20's shape). Each becomes a join with
-- a sub-query maintained as an internal view: the distinct keys of a
-- semi-join, the one row of an aggregate, or its groups by the correlated
-- columns; NOT EXISTS is the rows minus those with a match.
CREATE SCHEMA immediate_sublink;
SET search_path = immediate_sublink, public;
CREATE TABLE part (id int, kind text, price numeric);
CREATE TABLE supply (part_id int, supplier int, cost numeric, qty int);
INSERT INTO part VALUES (1, 'bolt', 10), (2, 'nut', 2), (3, 'gear', 50), (4, 'cog', NULL), (NULL, 'ghost', 1);
INSERT INTO supply VALUES (1, 100, 9, 5), (1, 101, 8, 1), (2, 100, 1, 50), (3, 102, 40, 2), (3, 102, 45, 3), (NULL, 103, 1, 1), (9, 100, 3, 3);
SELECT tide.create_view('supplied', 'SELECT p.id, p.kind FROM part p WHERE EXISTS (SELECT 1 FROM supply s WHERE s.part_id = p.id AND s.qty > 1)');
SELECT tide.create_view('unsupplied', 'SELECT p.id, p.kind FROM part p WHERE NOT EXISTS (SELECT 1 FROM supply s WHERE s.part_id = p.id)');
SELECT tide.create_view('from_100', 'SELECT p.kind FROM part p WHERE p.id IN (SELECT part_id FROM supply WHERE supplier = 100)');
SELECT tide.create_view('big_parts', 'SELECT p.kind FROM part p WHERE p.id IN (SELECT part_id FROM supply GROUP BY part_id HAVING sum(qty) > 4)');
SELECT tide.create_view('pricey', 'SELECT p.kind, p.price FROM part p WHERE p.price > (SELECT avg(price) FROM part)');
SELECT tide.create_view('margin', 'SELECT p.kind, p.price - (SELECT min(cost) FROM supply) AS margin FROM part p');
-- Q2's shape: the supplier with the lowest cost per part
SELECT tide.create_view('cheapest', $$SELECT s.part_id, s.supplier, s.cost FROM supply s
    WHERE s.cost = (SELECT min(s2.cost) FROM supply s2 WHERE s2.part_id = s.part_id)$$);
-- Q17's shape: an aggregate over rows below a per-part average
SELECT tide.create_view('small_orders', $$SELECT sum(s.qty) AS total, count(*) AS n FROM supply s
    WHERE s.qty < (SELECT 0.8 * avg(s2.qty) FROM supply s2 WHERE s2.part_id = s.part_id)$$);
-- NOT IN, with SQL's NULLs: no row when the sub-query has a NULL, every row when it has none at all
SELECT tide.create_view('not_from_100', 'SELECT p.kind FROM part p WHERE p.id NOT IN (SELECT part_id FROM supply WHERE supplier = 100)');
-- Q11's shape: groups above a fraction of the total (a scalar sub-query in HAVING)
SELECT tide.create_view('big_suppliers', 'SELECT supplier, sum(cost * qty) AS value FROM supply GROUP BY supplier HAVING sum(cost * qty) > (SELECT sum(cost * qty) * 0.2 FROM supply)');
-- Q21's shape: another supplier for the same part (EXISTS correlated by = and <>)
SELECT tide.create_view('shared_parts', 'SELECT s.part_id, s.supplier FROM supply s WHERE EXISTS (SELECT 1 FROM supply s2 WHERE s2.part_id = s.part_id AND s2.supplier <> s.supplier)');
SELECT tide.create_view('sole_suppliers', 'SELECT s.part_id, s.supplier FROM supply s WHERE NOT EXISTS (SELECT 1 FROM supply s2 WHERE s2.part_id = s.part_id AND s2.supplier <> s.supplier)');
SELECT operator, incremental FROM tide.explain('SELECT p.id FROM part p WHERE NOT EXISTS (SELECT 1 FROM supply s WHERE s.part_id = p.id)') WHERE operator = 'Filter';
SELECT * FROM supplied ORDER BY id;
SELECT * FROM unsupplied ORDER BY kind;
SELECT * FROM from_100 ORDER BY kind;
SELECT * FROM big_parts ORDER BY kind;
SELECT * FROM pricey ORDER BY kind;
SELECT * FROM cheapest ORDER BY part_id, supplier;
SELECT * FROM small_orders;
INSERT INTO supply VALUES (4, 100, 5, 9), (2, 104, 0.5, 1);
DELETE FROM supply WHERE supplier = 102 AND cost = 40;
UPDATE supply SET part_id = 3 WHERE supplier = 101;
UPDATE part SET price = 500 WHERE kind = 'nut';
INSERT INTO part VALUES (9, 'spring', 7);
SELECT * FROM supplied ORDER BY id;
SELECT * FROM unsupplied ORDER BY kind;
SELECT * FROM from_100 ORDER BY kind;
SELECT * FROM big_parts ORDER BY kind;
SELECT * FROM pricey ORDER BY kind;
SELECT * FROM cheapest ORDER BY part_id, supplier;
SELECT * FROM small_orders;
SELECT * FROM not_from_100 ORDER BY kind;
INSERT INTO supply VALUES (NULL, 100, 1, 1);
SELECT count(*) AS with_a_null FROM not_from_100;
DELETE FROM supply WHERE part_id IS NULL AND supplier = 100;
SELECT * FROM not_from_100 ORDER BY kind;
SELECT tide.verify('not_from_100');
SELECT * FROM big_suppliers ORDER BY supplier;
SELECT * FROM shared_parts ORDER BY part_id, supplier;
SELECT tide.verify('shared_parts'), tide.verify('sole_suppliers');
SELECT tide.verify('big_suppliers');
SELECT tide.verify('supplied'), tide.verify('unsupplied'), tide.verify('from_100'), tide.verify('big_parts'),
       tide.verify('pricey'), tide.verify('margin'), tide.verify('cheapest'), tide.verify('small_orders');
-- both sides in one statement, rollback, TRUNCATE
WITH gone AS (DELETE FROM part WHERE id = 1 RETURNING id)
INSERT INTO supply SELECT id + 1, 105, 1, 10 FROM gone;
BEGIN;
DELETE FROM supply;
SELECT count(*) AS unsupplied_now FROM unsupplied;
ROLLBACK;
SELECT tide.verify('supplied'), tide.verify('unsupplied'), tide.verify('from_100'), tide.verify('big_parts'),
       tide.verify('pricey'), tide.verify('margin'), tide.verify('cheapest'), tide.verify('small_orders');
TRUNCATE supply;
SELECT * FROM unsupplied ORDER BY kind;
SELECT count(*) AS all_parts FROM not_from_100;
SELECT tide.verify('supplied'), tide.verify('unsupplied'), tide.verify('from_100'), tide.verify('big_parts'),
       tide.verify('pricey'), tide.verify('margin'), tide.verify('cheapest'), tide.verify('small_orders');
-- correlated scalar sub-queries in the select list: each grouped by its
-- correlated columns and LEFT JOINed on them, so a row without a group
-- shows the value over no rows (0 for count, NULL for min)
INSERT INTO supply VALUES (1, 100, 9, 5), (3, 104, 30, 1);
INSERT INTO part VALUES (5, 'pin', 3), (5, 'pin2', 4);
SELECT tide.create_view('part_supply', $$SELECT p.id, p.kind,
    (SELECT count(*) FROM supply s WHERE s.part_id = p.id) AS offers,
    (SELECT min(s.cost) FROM supply s WHERE s.part_id = p.id AND s.qty > 1) AS best,
    coalesce((SELECT sum(s.qty) FROM supply s WHERE s.part_id = p.id), 0) + 1 AS stock,
    p.price - (SELECT max(s.cost) FROM supply s WHERE s.part_id = p.id) AS spread,
    (SELECT count(*) FROM supply) AS all_offers
  FROM part p WHERE p.kind <> 'ghost'$$);
-- in WHERE, where the sub-query's value over no rows is not NULL (count)
-- or the comparison is not a strict operator: the same LEFT JOIN
SELECT tide.create_view('few_offers', $$SELECT p.id, p.kind FROM part p
    WHERE (SELECT count(*) FROM supply s WHERE s.part_id = p.id) < 2
      AND (SELECT max(s.cost) FROM supply s WHERE s.part_id = p.id) IS DISTINCT FROM 9$$);
-- correlated by two columns, over a join
SELECT tide.create_view('pair_counts', $$SELECT s.part_id, s.supplier, p.kind,
    (SELECT count(*) FROM supply s2 WHERE s2.part_id = s.part_id AND s2.supplier = s.supplier) AS same
  FROM supply s JOIN part p ON p.id = s.part_id ORDER BY 1$$);
SELECT * FROM part_supply ORDER BY id, kind;
SELECT * FROM few_offers ORDER BY id, kind;
INSERT INTO supply VALUES (5, 100, 2, 7), (4, 101, 1, 1), (NULL, 100, 1, 1);
UPDATE supply SET part_id = 2 WHERE part_id = 3 AND cost = 30;
DELETE FROM supply WHERE part_id = 1 AND supplier = 101;
UPDATE part SET id = 3 WHERE kind = 'pin2';
SELECT * FROM part_supply ORDER BY id, kind;
SELECT * FROM pair_counts ORDER BY part_id, supplier, same;
SELECT * FROM few_offers ORDER BY id, kind;
SELECT tide.verify('part_supply'), tide.verify('pair_counts'), tide.verify('few_offers');
DELETE FROM supply WHERE part_id = 5;
TRUNCATE part;
INSERT INTO part VALUES (1, 'bolt', 10), (2, 'nut', 2);
SELECT * FROM part_supply ORDER BY id, kind;
SELECT tide.verify('part_supply'), tide.verify('pair_counts'), tide.verify('few_offers');
SELECT operator, detail FROM tide.explain($$SELECT p.id, (SELECT count(*) FROM supply s WHERE s.part_id = p.id) AS offers FROM part p$$) ORDER BY id;
SELECT tide.drop_view('part_supply'), tide.drop_view('pair_counts'), tide.drop_view('few_offers');
-- in the select list of a grouped query: computed over its groups (the
-- grouped query below, the sub-queries joined to its rows), correlated by
-- group keys
SELECT tide.create_view('supplier_stats', $$SELECT s.supplier, count(*) AS offers,
    (SELECT count(*) FROM part p WHERE p.id = s.supplier) AS named_parts,
    sum(s.qty) - (SELECT coalesce(max(p.price), 0) FROM part p WHERE p.id = s.supplier) AS net,
    (SELECT count(*) FROM part) AS all_parts
  FROM supply s GROUP BY s.supplier HAVING count(*) > 0$$);
SELECT * FROM supplier_stats ORDER BY supplier;
INSERT INTO part VALUES (100, 'hundred', 7), (200, 'two hundred', 1);
INSERT INTO supply VALUES (9, 200, 1, 1);
DELETE FROM supply WHERE supplier = 101;
UPDATE part SET price = 9 WHERE id = 100;
SELECT * FROM supplier_stats ORDER BY supplier;
SELECT tide.verify('supplier_stats');
SELECT tide.drop_view('supplier_stats');
-- a plain sub-query under an outer join is an internal view of its own
SELECT tide.create_view('cheap_join', $$SELECT p.kind, c.supplier FROM part p
    LEFT JOIN (SELECT part_id, supplier FROM supply WHERE cost < 5) c ON c.part_id = p.id$$);
SELECT tide.create_view('cheap_right', $$SELECT c.part_id, p.kind FROM part p
    RIGHT JOIN (SELECT part_id FROM supply WHERE cost < 5) c ON c.part_id = p.id$$);
INSERT INTO supply VALUES (1, 200, 4, 1), (2, 201, 40, 1);
DELETE FROM part WHERE id = 2;
SELECT tide.verify('cheap_join'), tide.verify('cheap_right');
SELECT tide.drop_view('cheap_join'), tide.drop_view('cheap_right');
-- a correlated sub-query selecting a column of at most one row (a lookup):
-- its row's value, NULL without one; a change giving a row two makes the
-- statement fail, as the query then fails
CREATE TABLE item (id int, kind text);
CREATE TABLE kind_info (kind text, label varchar(8), rank int);
INSERT INTO item VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, NULL), (5, 'a');
INSERT INTO kind_info VALUES ('a', 'alpha', 1), ('b', 'beta', 2), (NULL, 'none', 0);
SELECT tide.create_view('labelled', $$SELECT i.id, (SELECT k.label FROM kind_info k WHERE k.kind = i.kind) AS label,
    (SELECT k.rank FROM kind_info k WHERE k.kind = i.kind) + 1 AS next_rank,
    (SELECT k.label FROM kind_info k WHERE k.kind = i.kind AND k.rank > 1 ORDER BY k.label) AS high
  FROM item i WHERE (SELECT k.rank FROM kind_info k WHERE k.kind = i.kind) IS DISTINCT FROM 2$$);
SELECT tide.create_view('labelled_kinds', $$SELECT i.kind, count(*) AS n,
    (SELECT k.label FROM kind_info k WHERE k.kind = i.kind) AS label FROM item i GROUP BY i.kind$$);
SELECT * FROM labelled ORDER BY id;
INSERT INTO kind_info VALUES ('c', 'gamma', 3);
UPDATE kind_info SET rank = 2 WHERE kind = 'a';
UPDATE kind_info SET label = 'BETA', rank = 5 WHERE kind = 'b';
INSERT INTO item VALUES (6, 'c'), (7, 'z');
DELETE FROM item WHERE id = 1;
SELECT * FROM labelled ORDER BY id;
SELECT * FROM labelled_kinds ORDER BY kind;
SELECT tide.verify('labelled'), tide.verify('labelled_kinds');
INSERT INTO kind_info VALUES ('a', 'again', 9);
SELECT tide.verify('labelled'), tide.verify('labelled_kinds');
DELETE FROM kind_info WHERE kind = 'c';
SELECT tide.verify('labelled'), tide.verify('labelled_kinds');
SELECT tide.drop_view('labelled'), tide.drop_view('labelled_kinds');
-- under DISTINCT and ORDER BY ... LIMIT: the rows under them are an internal view
SELECT tide.create_view('supplier_counts', 'SELECT DISTINCT p.kind IS NULL AS no_kind, (SELECT count(*) FROM supply s WHERE s.part_id = p.id) AS n FROM part p');
SELECT tide.create_view('most_supplied', 'SELECT p.id, (SELECT count(*) FROM supply s WHERE s.part_id = p.id) AS n FROM part p ORDER BY n DESC, p.id NULLS LAST LIMIT 2');
SELECT * FROM supplier_counts ORDER BY no_kind, n;
SELECT * FROM most_supplied;
DELETE FROM supply WHERE part_id = 1;
INSERT INTO supply VALUES (100, 105, 1, 1), (100, 106, 2, 2), (1, 107, 3, 3);
SELECT * FROM supplier_counts ORDER BY no_kind, n;
SELECT * FROM most_supplied;
SELECT tide.verify('supplier_counts'), tide.verify('most_supplied');
-- what is not taken this way is refused, naming it
SELECT tide.create_view('bad', 'SELECT p.id, (SELECT s.cost FROM supply s WHERE s.part_id = p.id LIMIT 1) FROM part p');
SELECT tide.create_view('bad', 'SELECT p.id, (SELECT count(*) FROM supply s WHERE s.cost < p.price) FROM part p');
SELECT tide.create_view('bad', 'SELECT p.id FROM part p WHERE EXISTS (SELECT 1 FROM supply s WHERE s.cost < p.price AND s.qty > p.id)');
SELECT tide.create_view('bad', 'SELECT p.id FROM part p WHERE EXISTS (SELECT 1 FROM supply s WHERE s.part_id = p.id GROUP BY s.supplier HAVING count(*) > 1)');
SELECT tide.create_view('bad', 'SELECT p.id FROM part p WHERE p.id = 1 OR EXISTS (SELECT 1 FROM supply s WHERE s.part_id = p.id ORDER BY s.cost LIMIT 1 OFFSET 1)');
SELECT tide.create_view('bad', 'SELECT p.id FROM part p WHERE p.id NOT IN (SELECT s.part_id FROM supply s WHERE s.cost < p.price)');
SET client_min_messages = warning;
DROP SCHEMA immediate_sublink CASCADE;
RESET client_min_messages;
SELECT count(*) AS orphans_left FROM tide.catalog c WHERE c.parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tide.catalog p WHERE p.id = c.parent);

-- Sub-links that are not a join with the sub-query's keys, written as
-- comparisons with scalar sub-queries that aggregate (counts, min, max,
-- grouped by the correlation): EXISTS in the select list, in CASE, under OR
-- and NOT; x op ANY / ALL (SELECT ...) for <, <=, =, >=, >, <>, correlated
-- or not, with SQL's NULL semantics; correlated NOT IN; EXISTS correlated
-- by an ordering comparison, or by other conditions to a table with a
-- primary key. Every view is checked after every change.
CREATE SCHEMA immediate_quantified;
SET search_path = immediate_quantified, public;
CREATE TABLE item (id int PRIMARY KEY, grp int, price int);
CREATE TABLE offer (id int PRIMARY KEY, item int, price int, shop text);
INSERT INTO item VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30), (4, 2, NULL), (5, NULL, 5);
INSERT INTO offer VALUES (1, 1, 12, 'a'), (2, 1, 8, 'b'), (3, 2, 25, 'a'), (4, 3, NULL, 'b'), (5, 3, 35, 'a'), (6, NULL, 1, 'c');
-- EXISTS in the select list and in CASE, and under OR and NOT in WHERE
SELECT tide.create_view('offered', $$SELECT i.id, EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id) AS has_offer,
    CASE WHEN EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id AND o.shop = 'a') THEN 'a' ELSE 'other' END AS shop FROM item i$$);
SELECT tide.create_view('cheap_or_offered', $$SELECT i.id FROM item i
    WHERE i.price < 10 OR EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id AND o.shop = 'b' LIMIT 1)$$);
SELECT tide.create_view('not_both', $$SELECT i.id FROM item i
    WHERE NOT (EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id) AND i.grp = 1)$$);
-- ANY and ALL, correlated and not, in WHERE and in the select list (where NULL shows)
SELECT tide.create_view('beaten', 'SELECT i.id FROM item i WHERE i.price > ANY (SELECT o.price FROM offer o WHERE o.item = i.id)');
SELECT tide.create_view('best_price', 'SELECT i.id FROM item i WHERE i.price <= ALL (SELECT o.price FROM offer o WHERE o.item = i.id)');
SELECT tide.create_view('above_all', 'SELECT i.id FROM item i WHERE i.price > ALL (SELECT o.price FROM offer o WHERE o.shop = ''a'')');
SELECT tide.create_view('compared', $$SELECT i.id,
    i.price < ANY (SELECT o.price FROM offer o WHERE o.item = i.id) AS lt_any,
    i.price >= ALL (SELECT o.price FROM offer o WHERE o.item = i.id) AS ge_all,
    i.price = ANY (SELECT o.price FROM offer o) AS eq_any,
    i.price <> ANY (SELECT o.price FROM offer o WHERE o.item = i.id) AS ne_any,
    i.price = ALL (SELECT o.price FROM offer o WHERE o.item = i.id) AS eq_all,
    i.id IN (SELECT o.item FROM offer o) AS listed FROM item i$$);
-- NOT IN, correlated: no row when the sub-query has a NULL, every row when it is empty
SELECT tide.create_view('unmatched_price', 'SELECT i.id FROM item i WHERE i.price NOT IN (SELECT o.price FROM offer o WHERE o.item = i.id)');
-- EXISTS correlated by an equality and an ordering comparison
SELECT tide.create_view('undercut', 'SELECT i.id FROM item i WHERE EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id AND o.price < i.price)');
SELECT tide.create_view('never_undercut', 'SELECT i.id, NOT EXISTS (SELECT 1 FROM offer o WHERE o.item = i.id AND i.price > o.price) AS safe FROM item i');
-- EXISTS correlated by one comparison only: against the extreme of all rows
SELECT tide.create_view('dearer', $$SELECT i.id, EXISTS (SELECT 1 FROM offer o WHERE o.price > i.price) AS dearer,
    EXISTS (SELECT 1 FROM offer o WHERE o.item <> i.id) AS other_item FROM item i$$);
-- (a, b) IN under OR
SELECT tide.create_view('pair_or', $$SELECT i.id FROM item i WHERE i.grp IS NULL OR (i.id, i.price) IN (SELECT o.item, o.price + 2 FROM offer o)$$);
SELECT operator, detail FROM tide.explain('SELECT i.id FROM item i WHERE i.price > ANY (SELECT o.price FROM offer o WHERE o.item = i.id)') WHERE operator IN ('Filter', 'Join', 'Project') ORDER BY 1;
CREATE FUNCTION check_all() RETURNS TABLE (view_name text, ok boolean) LANGUAGE sql AS $$
    SELECT name::text, tide.verify(name::text) FROM tide.views WHERE name IN ('offered', 'cheap_or_offered', 'not_both', 'beaten',
        'best_price', 'above_all', 'compared', 'unmatched_price', 'undercut', 'never_undercut', 'pair_or', 'dearer') ORDER BY name $$;
SELECT * FROM compared ORDER BY id;
SELECT * FROM best_price ORDER BY id;
SELECT * FROM unmatched_price ORDER BY id;
SELECT * FROM undercut ORDER BY id;
SELECT count(*) AS views_checked FROM check_all();
SELECT * FROM check_all() WHERE NOT ok;
-- offers appear, change price and go; items change price and group
INSERT INTO offer VALUES (7, 2, 18, 'b'), (8, 4, 3, 'a'), (9, 5, NULL, 'a');
SELECT * FROM check_all() WHERE NOT ok;
UPDATE offer SET price = 9 WHERE id = 1;
UPDATE item SET price = 40 WHERE id = 3;
SELECT * FROM check_all() WHERE NOT ok;
DELETE FROM offer WHERE id IN (2, 4);
UPDATE item SET grp = 1, price = NULL WHERE id = 2;
SELECT * FROM check_all() WHERE NOT ok;
UPDATE offer SET item = 1 WHERE id = 5;
INSERT INTO item VALUES (6, 2, 35), (7, NULL, NULL);
SELECT * FROM check_all() WHERE NOT ok;
SELECT * FROM compared ORDER BY id;
SELECT * FROM best_price ORDER BY id;
SELECT * FROM unmatched_price ORDER BY id;
SELECT * FROM undercut ORDER BY id;
SELECT * FROM never_undercut ORDER BY id;
SELECT * FROM dearer ORDER BY id;
DELETE FROM offer WHERE shop = 'a';
SELECT * FROM check_all() WHERE NOT ok;
SELECT * FROM above_all ORDER BY id;
DELETE FROM offer;
SELECT * FROM check_all() WHERE NOT ok;
SELECT * FROM compared ORDER BY id;
-- uncorrelated, in HAVING
SELECT tide.create_view('group_beats_all', 'SELECT i.grp, max(i.price) AS top FROM item i GROUP BY i.grp HAVING max(i.price) > ALL (SELECT o.price FROM offer o WHERE o.shop = ''b'') OR NOT EXISTS (SELECT 1 FROM offer o WHERE o.price > 30)');
INSERT INTO offer VALUES (20, 1, 15, 'b'), (21, 2, 31, 'a');
SELECT * FROM group_beats_all ORDER BY grp;
UPDATE offer SET price = 50 WHERE id = 20;
DELETE FROM offer WHERE id = 21;
SELECT * FROM group_beats_all ORDER BY grp;
SELECT tide.verify('group_beats_all');
-- other types: bool, arrays and jsonb by equality (a count), numeric against integers
CREATE TABLE tagged (id int PRIMARY KEY, flag bool, tags int[], doc jsonb, amount numeric);
CREATE TABLE tag_use (id int PRIMARY KEY, tagged int, flag bool, tags int[], doc jsonb, amount numeric);
INSERT INTO tagged SELECT g, g % 2 = 0, ARRAY[g % 3], jsonb_build_object('k', g % 4), g / 3.0 FROM generate_series(1, 12) g;
INSERT INTO tag_use SELECT g, g % 12, g % 3 = 0, ARRAY[g % 4], jsonb_build_object('k', g % 5), g / 7.0 FROM generate_series(1, 30) g;
SELECT tide.create_view('typed', $$SELECT t.id, t.flag = ANY (SELECT u.flag FROM tag_use u WHERE u.tagged = t.id) AS same_flag,
    t.tags = ANY (SELECT u.tags FROM tag_use u WHERE u.tagged = t.id) AS same_tags, t.doc = ANY (SELECT u.doc FROM tag_use u) AS known_doc,
    t.amount > ALL (SELECT u.amount FROM tag_use u WHERE u.tagged = t.id) AS above, t.amount < ANY (SELECT u.id FROM tag_use u WHERE u.tagged = t.id) AS below_id
    FROM tagged t$$);
INSERT INTO tag_use VALUES (100, 3, NULL, NULL, NULL, NULL), (101, 4, true, '{1}', '{"k": 1}', 0.5);
UPDATE tag_use SET amount = amount + 1, flag = NOT flag WHERE id % 4 = 0;
DELETE FROM tag_use WHERE id % 9 = 0;
UPDATE tagged SET amount = NULL, flag = NULL WHERE id % 5 = 0;
SELECT tide.verify('typed');
-- EXISTS correlated by conditions the comparisons above do not take (BETWEEN,
-- two comparisons, OR, an expression over both sides), to a table with a
-- primary key: correlated by that key instead, over the join of the
-- sub-query's tables with a copy of the table
CREATE TABLE slot (id int PRIMARY KEY, grp int, lo int, hi int);
INSERT INTO slot SELECT i, i % 3, i % 7, i % 7 + i % 4 FROM generate_series(1, 20) i;
INSERT INTO slot VALUES (21, NULL, NULL, 5), (22, 1, 4, NULL);
INSERT INTO offer SELECT 40 + i, i % 4, 3 * i, 'd' FROM generate_series(0, 9) i;
SELECT tide.create_view('slot_between', 'SELECT s.id, s.grp FROM slot s WHERE EXISTS (SELECT 1 FROM offer o WHERE o.price / 4 BETWEEN s.lo AND s.hi)');
SELECT tide.create_view('slot_free', $$SELECT s.grp, count(*) AS free FROM slot s
    WHERE NOT EXISTS (SELECT 1 FROM offer o WHERE o.item = s.grp AND o.price / 4 > s.lo AND o.price / 4 < s.hi) GROUP BY s.grp$$);
SELECT tide.create_view('slot_either', $$SELECT s.id, EXISTS (SELECT 1 FROM offer o WHERE o.item = s.grp OR o.price = s.hi * 5) AS either,
    CASE WHEN EXISTS (SELECT 1 FROM offer o, item i WHERE i.id = o.item AND i.price + s.lo > 30) THEN 'dear' END AS dear FROM slot s$$);
SELECT operator, detail FROM tide.explain('SELECT s.id FROM slot s WHERE EXISTS (SELECT 1 FROM offer o WHERE o.price BETWEEN s.lo AND s.hi)')
  WHERE operator IN ('Subquery', 'Filter');
CREATE FUNCTION check_slots() RETURNS TABLE (slot_between bool, slot_free bool, slot_either bool) LANGUAGE sql AS $$
  SELECT tide.verify('slot_between'), tide.verify('slot_free'), tide.verify('slot_either') $$;
SELECT * FROM check_slots();
INSERT INTO offer VALUES (60, 2, 60, 'a'), (61, 1, 4, 'c'), (62, NULL, 16, 'b');
SELECT * FROM check_slots();
UPDATE slot SET lo = lo + 3, hi = hi + 1 WHERE id % 3 = 0;
UPDATE offer SET price = price + 8 WHERE shop = 'a';
SELECT * FROM check_slots();
DELETE FROM offer WHERE price < 20;
INSERT INTO slot VALUES (30, 2, 0, 100), (31, 1, 50, 51);
UPDATE slot SET id = id + 100 WHERE id = 5;
UPDATE item SET price = price * 2 WHERE id < 3;
SELECT * FROM check_slots();
SELECT count(*) AS between_rows FROM slot_between;
SELECT * FROM slot_free ORDER BY grp;
DELETE FROM slot WHERE grp = 1;
TRUNCATE offer;
SELECT * FROM check_slots();
-- refused: an operator without a btree ordering, no min / max for the type, a grouped sub-query under OR
SELECT tide.create_view('bool_order', 'SELECT t.id FROM tagged t WHERE t.flag < ANY (SELECT u.flag FROM tag_use u WHERE u.tagged = t.id) OR t.id < 3');
SELECT tide.create_view('like_any', 'SELECT i.id FROM item i WHERE (i.id::text) LIKE ANY (SELECT o.shop FROM offer o)');
SELECT tide.create_view('grouped_or', 'SELECT i.id FROM item i WHERE i.grp = 1 OR i.id IN (SELECT o.item FROM offer o GROUP BY o.item HAVING count(*) > 1)');
SET client_min_messages = warning;
DROP SCHEMA immediate_quantified CASCADE;
RESET client_min_messages;

-- Deferred mode with WAL capture (wal_level = logical): no trigger on the
-- base tables; the changes are decoded from a logical replication slot
-- (pgoutput) and applied by the refresher or tide.refresh, in one snapshot.
SET client_min_messages = notice;
CREATE TABLE w_items (id int PRIMARY KEY, cat int, price numeric, doc text);
CREATE TABLE w_cats (cat int PRIMARY KEY, name text);
INSERT INTO w_items SELECT i, i % 4, i * 1.5, CASE WHEN i % 10 = 0 THEN repeat('long ', 2000) || i END FROM generate_series(1, 300) i;
INSERT INTO w_cats SELECT i, 'cat ' || i FROM generate_series(0, 3) i;
SELECT tide.create_view('w_by_cat', 'SELECT cat, count(*) AS n, sum(price) AS total, max(price) AS top FROM w_items GROUP BY cat',
                        mode => 'deferred', capture => 'wal', refresh_interval => '20 milliseconds') IS NULL AS deferred;
SET client_min_messages = warning;
SELECT tide.create_view('w_named', 'SELECT i.id, c.name, length(i.doc) AS doc_len FROM w_items i JOIN w_cats c ON c.cat = i.cat',
                        mode => 'deferred', refresh_interval => '20 milliseconds') IS NULL AS deferred;
SELECT tide.wait('w_by_cat', '5 minutes') AND tide.wait('w_named', '5 minutes') AS built;
SELECT name, status, capture, pending_changes, wal_lag_bytes IS NOT NULL AS slot_lag_known, lag_seconds >= 0 AS lag_known FROM tide.views WHERE name::text LIKE 'w\_%' ORDER BY name::text;
-- no trigger on the base tables; whole old rows in the WAL
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid IN ('w_items'::regclass, 'w_cats'::regclass) AND NOT tgisinternal;
SELECT relname, relreplident FROM pg_class WHERE oid IN ('w_items'::regclass, 'w_cats'::regclass) ORDER BY 1;
SELECT count(*) AS slots FROM pg_replication_slots WHERE slot_name LIKE 'tide_%';

-- inserts, updates (one leaving a TOASTed value unchanged), deletes, both join sides
INSERT INTO w_items VALUES (1000, 1, 5, NULL), (1001, 2, NULL, 'short');
UPDATE w_items SET price = price + 1 WHERE id % 10 = 0;
UPDATE w_items SET cat = 3 WHERE id BETWEEN 5 AND 25;
DELETE FROM w_items WHERE id % 7 = 0;
WITH moved AS (DELETE FROM w_cats WHERE cat = 2 RETURNING cat) INSERT INTO w_cats SELECT cat, 'two' FROM moved;
SELECT tide.wait('w_by_cat') AS current;
SELECT tide.wait('w_named') AS current;
SELECT tide.verify('w_by_cat') AND tide.verify('w_named') AS equal;
SELECT * FROM w_by_cat ORDER BY cat;

-- no tide.wait: the refresher looks at the WAL by itself, change after change
UPDATE w_items SET price = 7 WHERE id = 1000;
DO $$ BEGIN FOR i IN 1..300 LOOP EXIT WHEN tide.verify('w_by_cat'); PERFORM pg_sleep(0.1); END LOOP; END $$;
UPDATE w_items SET price = 8 WHERE id = 1000;
DO $$ BEGIN FOR i IN 1..300 LOOP EXIT WHEN tide.verify('w_by_cat'); PERFORM pg_sleep(0.1); END LOOP; END $$;
UPDATE w_items SET price = 9 WHERE id = 1000;
DO $$ BEGIN FOR i IN 1..300 LOOP EXIT WHEN tide.verify('w_by_cat'); PERFORM pg_sleep(0.1); END LOOP; END $$;
SELECT n, total FROM w_by_cat WHERE cat = 1;

-- a rolled-back transaction is never applied; tide.refresh applies at once
BEGIN;
DELETE FROM w_items;
ROLLBACK;
UPDATE w_items SET doc = 'changed' WHERE id = 10;
SELECT tide.refresh('w_named') > 0 AS refreshed;
SELECT tide.verify('w_named') AS equal;
-- a transaction that has changed the base tables cannot refresh (its
-- changes are not in the WAL's decodable stream yet)
BEGIN;
INSERT INTO w_items VALUES (2000, 0, 1, NULL);
SELECT tide.refresh('w_by_cat');
ROLLBACK;

-- TRUNCATE: the next refresh rebuilds the view
TRUNCATE w_cats;
INSERT INTO w_cats VALUES (1, 'one again');
SELECT tide.wait('w_named') AS current;
SELECT tide.verify('w_named') AS equal;

-- switching capture: to triggers and back (each time rebuilt in the background)
SELECT tide.alter_view('w_by_cat', capture => 'trigger');
SELECT tide.wait('w_by_cat') AS rebuilt;
SELECT capture, status FROM tide.views WHERE name = 'w_by_cat'::regclass;
INSERT INTO w_items VALUES (3000, 0, 30, NULL);
SELECT tide.wait('w_by_cat') AS current;
SELECT tide.verify('w_by_cat') AS equal;
SELECT tide.alter_view('w_by_cat', capture => 'wal');
SELECT tide.wait('w_by_cat') AS rebuilt;
UPDATE w_items SET price = 0 WHERE id = 3000;
SELECT tide.wait('w_by_cat') AS current;
SELECT tide.verify('w_by_cat') AS equal;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'w_items'::regclass AND NOT tgisinternal;

-- the refresher refreshes its due WAL-captured views together, from one
-- read of the slot; one that fails is rolled back alone and the others
-- are applied, also once it is marked failed (it holds nothing back)
CREATE TABLE w_ratio (id int PRIMARY KEY, v int);
INSERT INTO w_ratio SELECT i, i FROM generate_series(1, 10) i;
SELECT tide.create_view('w_inverse', 'SELECT id, 100 / v AS inv FROM w_ratio',
                        mode => 'deferred', capture => 'wal', refresh_interval => '20 milliseconds') IS NULL AS deferred;
SELECT tide.create_view('w_total', 'SELECT count(*) AS n, sum(v) AS total FROM w_ratio',
                        mode => 'deferred', capture => 'wal', refresh_interval => '20 milliseconds') IS NULL AS deferred;
SELECT tide.wait('w_inverse', '5 minutes') AND tide.wait('w_total', '5 minutes') AS built;
INSERT INTO w_ratio VALUES (11, 0);
SELECT tide.wait('w_total') AS current;
SELECT tide.verify('w_total') AS equal;
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT status = 'failed' FROM tide.views WHERE name = 'w_inverse'::regclass);
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT status, last_error FROM tide.views WHERE name = 'w_inverse'::regclass;
UPDATE w_ratio SET v = 20 WHERE id = 1;
SELECT tide.wait('w_total') AS current;
SELECT tide.verify('w_total') AS equal;
SELECT n, total FROM w_total;
-- mended, a failed view is rebuilt by hand
DELETE FROM w_ratio WHERE v = 0;
SELECT tide.refresh('w_inverse') >= 0 AS rebuilt;
SELECT status, last_error FROM tide.views WHERE name = 'w_inverse'::regclass;
UPDATE w_ratio SET v = 50 WHERE id = 2;
SELECT tide.wait('w_inverse') AND tide.wait('w_total') AS current;
SELECT tide.verify('w_inverse') AND tide.verify('w_total') AS equal;
SELECT tide.drop_view('w_inverse');
SELECT tide.drop_view('w_total');
DROP TABLE w_ratio;

-- the last WAL-captured view gone, the refresher drops the slot
SELECT tide.drop_view('w_named');
SELECT tide.drop_view('w_by_cat');
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'tide_%');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT count(*) AS slots FROM pg_replication_slots WHERE slot_name LIKE 'tide_%';
SELECT count(*) AS published FROM pg_publication_tables WHERE pubname = 'tide_publication';
DROP TABLE w_items, w_cats;

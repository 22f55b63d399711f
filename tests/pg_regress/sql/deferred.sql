-- Deferred mode: changes are logged by statement triggers and applied by
-- tide.refresh (or the background refresher) in one batch. The views here
-- refresh every hour, so that only the refreshes the test makes happen
-- (the first build happens at once, in the background).
SET client_min_messages = warning;
CREATE TABLE def_d (id serial PRIMARY KEY, k int, g int, v numeric, note text);
CREATE TABLE def_e (k int, label text);
INSERT INTO def_d (k, g, v) SELECT i % 7, i % 3, i FROM generate_series(1, 200) i;
INSERT INTO def_e SELECT i, 'label ' || i FROM generate_series(0, 4) i;
SELECT tide.create_view('d_agg', 'SELECT g, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi FROM def_d GROUP BY g',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') AS built_now;
SELECT tide.create_view('d_join', 'SELECT d.id, e.label FROM def_d d JOIN def_e e ON e.k = d.k',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') AS built_now;
SELECT tide.create_view('d_sub', 'SELECT x.g, x.top, e.label FROM (SELECT g, max(v) AS top FROM def_d GROUP BY g) x JOIN def_e e ON e.k = x.g',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') AS built_now;
-- built in the background, from a snapshot taken after create_view commits
SELECT tide.wait('d_agg') AND tide.wait('d_join') AND tide.wait('d_sub') AS built;
SELECT name, mode, status, capture, refresh_interval, row_count, pending_changes FROM tide.views ORDER BY name::text;
SELECT tide.verify('d_agg') AND tide.verify('d_join') AND tide.verify('d_sub') AS equal;
SELECT * FROM d_agg ORDER BY g;

-- changes wait in the change log until a refresh applies them
INSERT INTO def_d (k, g, v) VALUES (1, 1, 1000), (2, 2, NULL), (NULL, NULL, 5);
UPDATE def_d SET g = (g + 1) % 3 WHERE id % 10 = 0;
DELETE FROM def_d WHERE v < 20;
UPDATE def_e SET k = k + 1 WHERE k = 4;
SELECT * FROM d_agg ORDER BY g;
SELECT name, pending_changes, lag_seconds >= 0 AS lag_known FROM tide.views ORDER BY name::text;
SELECT tide.verify('d_agg') AS equal_before_refresh;
SELECT tide.refresh('d_agg'), tide.refresh('d_join'), tide.refresh('d_sub');
SELECT * FROM d_agg ORDER BY g;
SELECT tide.verify('d_agg') AND tide.verify('d_join') AND tide.verify('d_sub') AS equal;
SELECT name, pending_changes, last_changes FROM tide.views ORDER BY name::text;
SELECT v.name, h.kind, h.changes, h.rows_written FROM tide.refresh_history h JOIN tide.catalog c ON c.id = h.view_id
  JOIN tide.views v ON v.name = c.view ORDER BY v.name::text, h.started_at;
-- nothing pending: a refresh applies nothing
SELECT tide.refresh('d_agg');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_agg'::regclass)
 ORDER BY started_at DESC LIMIT 1;

-- rolled-back changes are never applied; a savepoint's rolled-back part neither
BEGIN;
INSERT INTO def_d (k, g, v) VALUES (3, 0, 1);
ROLLBACK;
BEGIN;
INSERT INTO def_d (k, g, v) VALUES (3, 0, 2);
SAVEPOINT s;
DELETE FROM def_d WHERE g = 1;
ROLLBACK TO SAVEPOINT s;
UPDATE def_d SET v = v * 2 WHERE k = 3;
COMMIT;
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal;

-- a refresh inside the writing transaction applies that transaction's
-- changes so far; the ones after it wait for the next refresh
BEGIN;
INSERT INTO def_d (k, g, v) VALUES (5, 2, 7);
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal_in_transaction;
DELETE FROM def_d WHERE k = 5;
COMMIT;
SELECT tide.verify('d_agg') AS equal_before_refresh;
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal;

-- one statement changing both inputs of a join (ΔA⋈ΔB counted once)
WITH moved AS (DELETE FROM def_e WHERE k = 2 RETURNING k, label)
INSERT INTO def_d (k, g, v) SELECT k, 0, 1 FROM moved;
INSERT INTO def_e VALUES (2, 'two again'), (2, 'two, twice');
SELECT tide.refresh('d_join'), tide.refresh('d_sub');
SELECT tide.verify('d_join') AND tide.verify('d_sub') AS equal;

-- TRUNCATE: the next refresh rebuilds the view
TRUNCATE def_e;
INSERT INTO def_e VALUES (1, 'one');
SELECT tide.refresh('d_join');
SELECT tide.verify('d_join') AS equal;
SELECT kind FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_join'::regclass)
 ORDER BY started_at DESC LIMIT 1;

-- columns added to, dropped from and renamed in a base table
ALTER TABLE def_d ADD COLUMN extra int DEFAULT 1;
ALTER TABLE def_d DROP COLUMN note;
ALTER TABLE def_d RENAME COLUMN v TO amount;
INSERT INTO def_d (k, g, amount, extra) VALUES (1, 2, 3, 4);
UPDATE def_d SET amount = amount + 1 WHERE k = 1;
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal;

-- a view over a deferred view: refreshing it refreshes the view it reads first
SELECT tide.create_view('d_over', 'SELECT count(*) AS groups, sum(n) AS rows FROM d_agg',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
SELECT tide.wait('d_over');
INSERT INTO def_d (k, g, amount) VALUES (1, 7, 1);
SELECT tide.refresh('d_over');
SELECT * FROM d_over;
SELECT tide.verify('d_agg') AND tide.verify('d_over') AS equal;
-- an immediate view over a deferred one changes when that one is refreshed
SELECT tide.create_view('i_over', 'SELECT g, n FROM d_agg WHERE n > 1');
DELETE FROM def_d WHERE g = 7;
SELECT tide.verify('i_over') AS equal_before_refresh;
SELECT tide.refresh('d_agg');
SELECT tide.verify('i_over') AS equal;

-- a writer with no rights on the view or on the change log
CREATE ROLE tide_deferred_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON def_d TO tide_deferred_writer;
GRANT USAGE ON SEQUENCE def_d_id_seq TO tide_deferred_writer;
SET ROLE tide_deferred_writer;
INSERT INTO def_d (k, g, amount) VALUES (2, 1, 50);
UPDATE def_d SET amount = 0 WHERE k = 2 AND g = 1;
RESET ROLE;
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal;

-- tide.wait: an immediate view is always current; a deferred view is
-- waited for until the refresher has applied what committed before the call
SELECT tide.wait('i_over');
INSERT INTO def_d (k, g, amount) VALUES (4, 1, 4);
SELECT tide.alter_view('d_agg', refresh_interval => '10 milliseconds');
SELECT tide.wait('d_agg', timeout => '60 seconds');
SELECT tide.verify('d_agg') AS equal;
SELECT tide.alter_view('d_agg', refresh_interval => '1 hour');

-- switching modes keeps the rows: deferred to immediate applies what is pending
INSERT INTO def_d (k, g, amount) VALUES (6, 0, 60);
SELECT tide.alter_view('d_agg', mode => 'immediate');
SELECT mode, pending_changes FROM tide.views WHERE name = 'd_agg'::regclass;
SELECT tide.verify('d_agg') AS equal;
UPDATE def_d SET amount = amount + 1 WHERE k = 6;
SELECT tide.verify('d_agg') AS equal_at_once;
SELECT tide.alter_view('d_agg', mode => 'deferred');
UPDATE def_d SET amount = amount + 1 WHERE k = 6;
SELECT mode, pending_changes FROM tide.views WHERE name = 'd_agg'::regclass;
SELECT tide.refresh('d_agg');
SELECT tide.verify('d_agg') AS equal;
SELECT tide.alter_view('d_sub', mode => 'immediate');
INSERT INTO def_d (k, g, amount) VALUES (0, 0, 99999);
SELECT tide.verify('d_sub') AS equal_at_once;
SELECT tide.alter_view('d_sub', mode => 'deferred');
-- an internal view is altered with the view that contains it
DO $$
BEGIN
    PERFORM tide.alter_view((SELECT view::text FROM tide.catalog WHERE parent IS NOT NULL LIMIT 1), mode => 'immediate');
EXCEPTION WHEN wrong_object_type THEN
    RAISE WARNING 'refused: %', SQLERRM ~ 'is an internal view of another pg_tide view';
END
$$;

-- a refresh that fails (here: a division by zero in the query) is an error
-- in the caller's transaction; in the background it is retried, and after
-- tide.max_failures failures in a row the view is marked failed
CREATE TABLE def_f (x int);
INSERT INTO def_f VALUES (1), (2);
SELECT tide.create_view('d_fail', 'SELECT 10 / x AS y FROM def_f', mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
SELECT tide.wait('d_fail');
INSERT INTO def_f VALUES (0);
SELECT tide.refresh('d_fail');
SELECT tide.alter_view('d_fail', refresh_interval => '10 milliseconds');
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT status FROM tide.views WHERE name = 'd_fail'::regclass) = 'failed';
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT status, last_error FROM tide.views WHERE name = 'd_fail'::regclass;
SELECT tide.wait('d_fail');
DELETE FROM def_f WHERE x = 0;
SELECT tide.refresh('d_fail');
SELECT status, last_error FROM tide.views WHERE name = 'd_fail'::regclass;
SELECT tide.verify('d_fail') AS equal;

-- bad input
SELECT tide.create_view('bad', 'SELECT k FROM def_d', mode => 'later');
SELECT tide.create_view('bad', 'SELECT k FROM def_d', mode => 'deferred', capture => 'smoke signals');
SELECT tide.create_view('bad', 'SELECT k FROM def_d', mode => 'deferred', refresh_interval => '0 seconds');
-- tide.refresh returns the view's row count, which refreshes keep from the
-- rows they insert and delete (no count of the whole view per refresh),
-- also after a spell in immediate mode and after a rolled-back refresh
SELECT tide.alter_view('d_join', mode => 'immediate');
INSERT INTO def_d (k, g, amount) SELECT i % 5, 0, i FROM generate_series(1, 30) i;
SELECT tide.alter_view('d_join', mode => 'deferred');
INSERT INTO def_d (k, g, amount) SELECT i % 5, 1, i FROM generate_series(1, 20) i;
DELETE FROM def_d WHERE k = 3 AND g = 0;
-- (the count in a statement of its own: a statement does not see the writes
-- of a function it calls)
SELECT tide.refresh('d_join') AS rows \gset
SELECT :rows = count(*) AS refresh_counts FROM d_join;
BEGIN;
DELETE FROM def_d WHERE k = 2;
SELECT tide.refresh('d_join') AS rows \gset
SELECT :rows = count(*) AS refresh_counts FROM d_join;
ROLLBACK;
UPDATE def_e SET k = NULL WHERE k = 1;
SELECT tide.refresh('d_join') AS rows \gset
SELECT :rows = count(*) AS refresh_counts,
       (SELECT row_count FROM tide.views WHERE name = 'd_join'::regclass) = count(*) AS catalog_counts FROM d_join;
SELECT tide.refresh('d_join', full => true) AS rows \gset
SELECT :rows = count(*) AS refresh_counts FROM d_join;
UPDATE def_e SET k = 1 WHERE k IS NULL;
SELECT tide.refresh('d_join') AS rows \gset
SELECT :rows = count(*) AS refresh_counts, tide.verify('d_join') AS equal FROM d_join;
-- without the statistics counters the refresh counts the view
SET track_counts = off;
INSERT INTO def_d (k, g, amount) SELECT 1, 2, i FROM generate_series(1, 7) i;
SELECT tide.refresh('d_join') AS rows \gset
SELECT :rows = count(*) AS refresh_counts FROM d_join;
RESET track_counts;

SELECT tide.create_view('bad', 'SELECT k FROM def_d', mode => 'deferred', refresh_interval => NULL);
SELECT tide.alter_view('d_agg', mode => 'sometimes');
SELECT tide.wait('d_agg', timeout => NULL);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tide.wait('d_agg');
ROLLBACK;
SELECT to_regclass('bad');

-- a batch that would take longer to apply than a rebuild, by the view's
-- own refresh history (medians of the last measurements), rebuilds the
-- view; a batch far from any measured size
-- is applied, and so is one for a view that another pg_tide view reads
CREATE TABLE def_cost (id int PRIMARY KEY, g int);
INSERT INTO def_cost SELECT i, i % 4 FROM generate_series(1, 100) i;
SELECT tide.create_view('d_cost', 'SELECT g, count(*) AS n FROM def_cost GROUP BY g',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
SELECT tide.wait('d_cost');
-- the build is the last full refresh: say it took 1 ms, and that 10 changes took a second to apply
UPDATE tide.refresh_history SET duration_ms = 1 WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass);
INSERT INTO tide.refresh_history SELECT id, now(), 1000, 'incremental', 10, 10 FROM tide.catalog WHERE view = 'd_cost'::regclass;
UPDATE def_cost SET g = g + 1 WHERE id <= 5;
SELECT tide.refresh('d_cost');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass)
 ORDER BY started_at DESC LIMIT 1;
SELECT tide.verify('d_cost') AS equal;
-- 10 changes in 20 ms: 100 changes are expected to take 200 ms, more than a rebuild
UPDATE tide.refresh_history SET duration_ms = 1 WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass) AND kind = 'full';
INSERT INTO tide.refresh_history SELECT id, now(), 20, 'incremental', 10, 10 FROM tide.catalog WHERE view = 'd_cost'::regclass;
UPDATE def_cost SET g = g + 1 WHERE id <= 50;
SELECT tide.refresh('d_cost');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass)
 ORDER BY started_at DESC LIMIT 1;
-- three rebuilds in a row (the build and the two above, the made-up
-- measurements put before them): the next batch is applied anyway, to
-- measure again what applying costs
UPDATE tide.refresh_history SET started_at = started_at - interval '1 day'
 WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass) AND kind = 'incremental';
INSERT INTO tide.refresh_history SELECT id, now() - interval '1 day', 1000, 'incremental', 10, 10 FROM tide.catalog WHERE view = 'd_cost'::regclass;
UPDATE def_cost SET g = g + 1 WHERE id <= 5;
SELECT tide.refresh('d_cost');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass)
 ORDER BY started_at DESC LIMIT 1;
-- 200 changes: no incremental refresh measured within 16 times that size
UPDATE tide.refresh_history SET duration_ms = 1 WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass) AND kind = 'full';
UPDATE def_cost SET g = g + 1;
SELECT tide.refresh('d_cost');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass)
 ORDER BY started_at DESC LIMIT 1;
SELECT tide.create_view('d_cost_over', 'SELECT sum(n) AS n FROM d_cost', mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
SELECT tide.wait('d_cost_over');
INSERT INTO tide.refresh_history SELECT id, now(), 1000, 'incremental', 10, 10 FROM tide.catalog WHERE view = 'd_cost'::regclass;
UPDATE tide.refresh_history SET duration_ms = 1 WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass) AND kind = 'full';
UPDATE def_cost SET g = g + 1 WHERE id <= 5;
SELECT tide.refresh('d_cost');
SELECT kind, changes FROM tide.refresh_history WHERE view_id = (SELECT id FROM tide.catalog WHERE view = 'd_cost'::regclass)
 ORDER BY started_at DESC LIMIT 1;
SELECT tide.refresh('d_cost_over');
SELECT tide.verify('d_cost') AND tide.verify('d_cost_over') AS equal;
SELECT tide.drop_view('d_cost_over'), tide.drop_view('d_cost');
DROP TABLE def_cost;

-- a build in the background shows how far it is in tide.views: rows
-- written of the rows the planner expects (here it stops at row 3,000 of
-- 5,000, on a lock the test holds, until the test lets it go on)
CREATE TABLE def_big (id int PRIMARY KEY, v int);
INSERT INTO def_big SELECT i, i % 10 FROM generate_series(1, 5000) i;
ANALYZE def_big;
CREATE FUNCTION def_gate(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF i = 3000 THEN
        PERFORM pg_advisory_lock_shared(4711);
        PERFORM pg_advisory_unlock_shared(4711);
    END IF;
    RETURN i;
END $$;
SELECT pg_advisory_lock(4711) IS NOT NULL AS locked;
SELECT tide.create_view('d_big', 'SELECT def_gate(id) AS id, v FROM def_big',
                        mode => 'deferred', capture => 'trigger', refresh_interval => '1 hour') IS NULL AS deferred;
DO $$
BEGIN
    FOR i IN 1..1200 LOOP
        EXIT WHEN (SELECT build_rows_done FROM tide.views WHERE name = 'd_big'::regclass) > 0;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT status, build_rows_done BETWEEN 1 AND 2999 AS partly_done, build_rows_estimated FROM tide.views WHERE name = 'd_big'::regclass;
-- meanwhile another refresh worker (tide.refresh_workers = 2) serves the other views
INSERT INTO def_d (k, g, amount) VALUES (5, 1, 50);
SELECT tide.alter_view('d_agg', refresh_interval => '10 milliseconds');
SELECT tide.wait('d_agg', timeout => '60 seconds') AS refreshed_beside_the_build;
SELECT tide.alter_view('d_agg', refresh_interval => '1 hour');
SELECT tide.verify('d_agg') AS equal;
SELECT pg_advisory_unlock(4711) AS unlocked;
SELECT tide.wait('d_big', timeout => '60 seconds');
SELECT status, row_count, build_rows_done, build_rows_estimated FROM tide.views WHERE name = 'd_big'::regclass;
SELECT tide.verify('d_big') AS equal;
SELECT tide.drop_view('d_big');
DROP TABLE def_big;
DROP FUNCTION def_gate(int);

-- dropping the views removes the change logs and their triggers
SELECT count(*) AS logs FROM pg_class WHERE relnamespace = 'tide_state'::regnamespace AND relname ~ '^log_[0-9]+$';
SELECT tide.drop_view('d_fail');
SELECT tide.drop_view('i_over');
SELECT tide.drop_view('d_over');
SELECT tide.drop_view('d_agg');
SELECT tide.drop_view('d_join');
SELECT tide.drop_view('d_sub');
SELECT count(*) AS logs FROM pg_class WHERE relnamespace = 'tide_state'::regnamespace AND relname ~ '^log_';
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname LIKE 'tide_log%';
DROP TABLE def_d, def_e, def_f;
DROP ROLE tide_deferred_writer;

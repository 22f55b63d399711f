-- pg_tide's catalog. Runs first in the extension script, in schema tide.

-- Internal objects made per view (the view's query as a PostgreSQL view,
-- later its state tables) live in their own schema, never in the user's.
GRANT USAGE ON SCHEMA tide TO PUBLIC;

CREATE SCHEMA tide_state;
GRANT USAGE ON SCHEMA tide_state TO PUBLIC;
COMMENT ON SCHEMA tide_state IS 'pg_tide internal objects: each view''s query and bookkeeping state';

CREATE SEQUENCE tide.catalog_id_seq;

-- One row per pg_tide view.
CREATE TABLE tide.catalog (
    id              bigint PRIMARY KEY DEFAULT nextval('tide.catalog_id_seq'),
    view            regclass NOT NULL UNIQUE,
    definition      regclass NOT NULL UNIQUE,
    query           text NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('immediate', 'deferred')),
    status          text NOT NULL CHECK (status IN ('ready', 'building', 'stale', 'failed')),
    row_count       bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_refresh_at timestamptz,
    last_refresh_ms double precision,
    last_error      text,
    base_tables     regclass[] NOT NULL DEFAULT '{}',
    -- Deferred mode: how often the background refresher applies the
    -- logged changes, and how changes are captured.
    refresh_interval interval NOT NULL DEFAULT '1 second',
    capture         text NOT NULL DEFAULT 'trigger' CHECK (capture IN ('trigger', 'wal')),
    -- Deferred mode: what the view has applied. A logged change is applied
    -- when its transaction is visible in applied_snapshot, or, for the
    -- transaction that made the last refresh (applied_xid), when it was
    -- logged before that refresh (seq <= applied_seq).
    applied_snapshot pg_snapshot,
    applied_xid     xid8,
    applied_seq     bigint,
    last_changes    bigint,
    -- Refreshes in a row that failed (the refresher stops at a limit).
    failures        int NOT NULL DEFAULT 0,
    -- Set on the internal view that maintains a sub-query of another view's
    -- query (its table is in tide_state): the view that reads it.
    parent          bigint,
    -- The row-level security of the base tables when the view was built
    -- (tide.row_security): when it changes, the view is rebuilt.
    row_security    text
);
ALTER SEQUENCE tide.catalog_id_seq OWNED BY tide.catalog.id;
COMMENT ON TABLE tide.catalog IS 'pg_tide views; read it through tide.views';
COMMENT ON COLUMN tide.catalog.definition IS 'the view''s query, stored as a PostgreSQL view in schema tide_state';
COMMENT ON COLUMN tide.catalog.parent IS 'for the internal view of a sub-query: the view whose query contains it';

-- Keep the catalog in pg_dump output.
SELECT pg_catalog.pg_extension_config_dump('tide.catalog', '');
SELECT pg_catalog.pg_extension_config_dump('tide.catalog_id_seq', '');

REVOKE ALL ON tide.catalog FROM PUBLIC;
GRANT SELECT ON tide.catalog TO PUBLIC;

-- One row per view whose writers must take turns (views joining inputs):
-- maintenance UPDATEs its row first, so a second writer waits for the first
-- to commit and then, at READ COMMITTED, sees its changes; at REPEATABLE
-- READ and SERIALIZABLE the update fails with a serialization error (40001)
-- instead of maintaining from a snapshot that misses the first writer.
CREATE TABLE tide.view_locks (
    view_id bigint PRIMARY KEY REFERENCES tide.catalog (id) ON DELETE CASCADE,
    version bigint NOT NULL DEFAULT 0
);
REVOKE ALL ON tide.view_locks FROM PUBLIC;

-- One change log per base table of deferred views: the rows its statements
-- inserted (new) and deleted (not new), a NULL new for a TRUNCATE, one
-- column c<attnum> per logged column. Made by pg_tide (see capture/log.rs);
-- every log's seq comes from this sequence.
CREATE SEQUENCE tide.change_seq;

-- The last refreshes of each view.
CREATE TABLE tide.refresh_history (
    view_id     bigint NOT NULL REFERENCES tide.catalog (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('incremental', 'full', 'none')),
    changes     bigint NOT NULL,
    rows_written bigint NOT NULL
);
CREATE INDEX ON tide.refresh_history (view_id, started_at);
REVOKE ALL ON tide.refresh_history FROM PUBLIC;
GRANT SELECT ON tide.refresh_history TO PUBLIC;
COMMENT ON TABLE tide.refresh_history IS 'The last refreshes of each deferred view (changes consumed, rows written)';

-- tide.views is made last (sql/finalize.sql): it calls functions of the library.

-- A plain DROP of a view's table (or of a base table with CASCADE, or of a
-- schema) removes what pg_tide made for it. (The tables of its internal
-- views depend on its table as parts of it: the same DROP removes them.) SECURITY DEFINER: the dropping
-- user may not write the catalog, and this only ever removes entries whose
-- objects were just dropped.
CREATE FUNCTION tide.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gone record;
BEGIN
    FOR gone IN
        DELETE FROM tide.catalog c
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_class'::regclass
           AND d.objsubid = 0
           AND (d.objid = c.view OR d.objid = c.definition)
        RETURNING c.view, c.definition, c.base_tables
    LOOP
        -- Capture triggers stay only on tables some view still reads, and
        -- change logs on tables some deferred view reads.
        PERFORM tide.drop_capture(t)
           FROM unnest(gone.base_tables) t
          WHERE NOT EXISTS (SELECT 1 FROM tide.catalog o WHERE t = ANY (o.base_tables));
        PERFORM tide.drop_log(t)
           FROM unnest(gone.base_tables) t
          WHERE NOT EXISTS (SELECT 1 FROM tide.catalog o WHERE t = ANY (o.base_tables) AND o.mode = 'deferred');
        -- WAL capture: out of the publication (its replica identity is left as it is).
        PERFORM tide.unpublish(t)
           FROM unnest(gone.base_tables) t
          WHERE NOT EXISTS (SELECT 1 FROM tide.catalog o WHERE t = ANY (o.base_tables) AND o.mode = 'deferred' AND o.capture = 'wal');
        -- The query's view may already be gone (dropped by the same command).
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = gone.definition) THEN
            EXECUTE format('DROP VIEW %s', gone.definition::regclass);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = gone.view) THEN
            EXECUTE format('DROP TABLE %s', gone.view::regclass);
        END IF;
        -- The background refresher reads the catalog again.
        PERFORM tide.notify_refresher();
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tide.on_sql_drop() FROM PUBLIC;

-- Capture: statement-level triggers with transition tables on a base table.
-- The BEFORE trigger counts the statements whose AFTER triggers are still to
-- come, so that a statement changing several inputs of a view is recognized.
-- On a table under a base table in a partition or inheritance tree, `root`
-- is that base table, passed to the triggers: their rows are its changes.
CREATE FUNCTION tide.install_capture(t regclass, root regclass DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    arg text := CASE WHEN root IS NULL THEN '' ELSE quote_literal(root::oid::text) END;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'tide_capture_before') THEN
        EXECUTE format('CREATE TRIGGER tide_capture_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION tide.capture_before(%s)', t, arg);
        EXECUTE format('CREATE TRIGGER tide_capture_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS tide_new
                        FOR EACH STATEMENT EXECUTE FUNCTION tide.capture_after(%s)', t, arg);
        EXECUTE format('CREATE TRIGGER tide_capture_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS tide_old NEW TABLE AS tide_new
                        FOR EACH STATEMENT EXECUTE FUNCTION tide.capture_after(%s)', t, arg);
        EXECUTE format('CREATE TRIGGER tide_capture_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS tide_old
                        FOR EACH STATEMENT EXECUTE FUNCTION tide.capture_after(%s)', t, arg);
        EXECUTE format('CREATE TRIGGER tide_capture_truncate AFTER TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION tide.capture_after(%s)', t, arg);
    END IF;
    IF root IS NULL THEN
        PERFORM tide.sync_tree(t);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION tide.install_capture(regclass, regclass) FROM PUBLIC;

-- The names of the capture triggers (tide.install_capture) and of the
-- change-log triggers (tide.install_log_triggers) a table may have.
CREATE FUNCTION tide.capture_trigger_names() RETURNS text[] LANGUAGE sql IMMUTABLE
    AS $$ SELECT ARRAY['tide_capture_before', 'tide_capture_insert', 'tide_capture_update', 'tide_capture_delete', 'tide_capture_truncate'] $$;
CREATE FUNCTION tide.log_trigger_names() RETURNS text[] LANGUAGE sql IMMUTABLE
    AS $$ SELECT ARRAY['tide_log_insert', 'tide_log_update', 'tide_log_delete', 'tide_log_truncate'] $$;

-- A view's query may read a correlated scalar sub-query that selects a
-- column, not an aggregate: it is kept as the value of its one row and a
-- count of its rows (see src/analyze/select_scalars.rs), and a row that
-- would see more than one raises the error the query itself raises.
CREATE FUNCTION tide.more_than_one_row(value anyelement) RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'more than one row returned by a subquery used as an expression' USING ERRCODE = 'cardinality_violation';
END
$$;

CREATE FUNCTION tide.drop_triggers(t regclass, names text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n text;
BEGIN
    FOREACH n IN ARRAY names LOOP
        IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = n) THEN
            EXECUTE format('DROP TRIGGER %I ON %s', n, t);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tide.drop_triggers(regclass, text[]) FROM PUBLIC;

CREATE FUNCTION tide.drop_capture(t regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- (Dropped already when several views over the table went at once.)
    PERFORM tide.drop_triggers(t, tide.capture_trigger_names());
    PERFORM tide.sync_tree(t);
END
$$;
REVOKE ALL ON FUNCTION tide.drop_capture(regclass) FROM PUBLIC;

-- The triggers that append a base table's statements to its change log
-- (see capture/log.rs), on the table or, with `root`, on a table under it.
CREATE FUNCTION tide.install_log_triggers(t regclass, root regclass DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    arg text := CASE WHEN root IS NULL THEN '' ELSE quote_literal(root::oid::text) END;
    e record;
BEGIN
    FOR e IN SELECT * FROM (VALUES ('insert', 'REFERENCING NEW TABLE AS tide_new'),
                                   ('update', 'REFERENCING OLD TABLE AS tide_old NEW TABLE AS tide_new'),
                                   ('delete', 'REFERENCING OLD TABLE AS tide_old'),
                                   ('truncate', '')) AS v(event, referencing) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'tide_log_' || e.event) THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION tide.log_change(%s)',
                           'tide_log_' || e.event, upper(e.event), t, e.referencing, arg);
        END IF;
    END LOOP;
    IF root IS NULL THEN
        PERFORM tide.sync_tree(t);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION tide.install_log_triggers(regclass, regclass) FROM PUBLIC;

-- Partition and inheritance trees. A statement fires the statement
-- triggers of the table it names only (their transition tables hold the
-- rows of every table under it): a base table's triggers are put on every
-- table under it too, with the base table as `root`. tide.tree_members
-- records the tables so put, so that a table created, attached, detached,
-- inherited, disinherited or dropped under a base table is noticed at the
-- end of the command (tide.on_tree_ddl) and the views over the tree rebuilt.
CREATE TABLE tide.tree_members (
    member oid PRIMARY KEY,
    root   oid NOT NULL
);
CREATE INDEX ON tide.tree_members (root);
REVOKE ALL ON tide.tree_members FROM PUBLIC;

-- Give the tables under `root` the capture and log triggers `root` has (and
-- no others), and record them; true when the tree's rows changed without a
-- statement on it: a table with rows came in, or a table left.
CREATE FUNCTION tide.sync_tree(root regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    capture boolean := EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = root AND tgname = 'tide_capture_before');
    logged boolean := EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = root AND tgname = 'tide_log_insert');
    changed boolean := false;
    below oid[] := '{}';
    m oid;
BEGIN
    IF capture OR logged THEN
        below := ARRAY(WITH RECURSIVE d(member) AS (
                           SELECT inhrelid FROM pg_inherits WHERE inhparent = root
                           UNION SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.member)
                       SELECT member FROM d);
    END IF;
    -- Tables that left the tree (or whose root has no views left).
    FOR m IN SELECT t.member FROM tide.tree_members t
              WHERE t.root = sync_tree.root AND t.member <> ALL (below) LOOP
        DELETE FROM tide.tree_members t WHERE t.member = m;
        changed := true;
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = m) THEN
            PERFORM tide.drop_triggers(m::regclass, tide.capture_trigger_names() || tide.log_trigger_names());
        END IF;
    END LOOP;
    FOREACH m IN ARRAY below LOOP
        IF NOT EXISTS (SELECT 1 FROM tide.tree_members t WHERE t.member = m) THEN
            IF EXISTS (SELECT 1 FROM tide.catalog c WHERE m::regclass = ANY (c.base_tables)) THEN
                RAISE EXCEPTION 'table % is read by a pg_tide view and cannot be put under %, which another view reads', m::regclass, root
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'A partition or inheritance child is maintained as part of its tree only: drop the view over the table first.';
            END IF;
            INSERT INTO tide.tree_members VALUES (m, root);
            -- (A partitioned table holds no rows of its own.)
            EXECUTE format('SELECT $1 OR EXISTS (SELECT 1 FROM ONLY %s)', m::regclass) INTO changed USING changed;
        ELSIF (SELECT t.root FROM tide.tree_members t WHERE t.member = m) <> root THEN
            RAISE EXCEPTION 'table % is under two tables that pg_tide views read, % and %', m::regclass,
                (SELECT t.root FROM tide.tree_members t WHERE t.member = m)::regclass, root
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A table with several inheritance parents can be under one base table of pg_tide views only.';
        END IF;
        IF capture THEN
            PERFORM tide.install_capture(m::regclass, root);
        ELSE
            PERFORM tide.drop_triggers(m::regclass, tide.capture_trigger_names());
        END IF;
        IF logged THEN
            PERFORM tide.install_log_triggers(m::regclass, root);
        ELSE
            PERFORM tide.drop_triggers(m::regclass, tide.log_trigger_names());
        END IF;
    END LOOP;
    RETURN changed;
END
$$;
REVOKE ALL ON FUNCTION tide.sync_tree(regclass) FROM PUBLIC;

-- The change log of a table no deferred view reads any more goes, with its triggers.
CREATE FUNCTION tide.drop_log(t regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM tide.drop_triggers(t, tide.log_trigger_names());
    PERFORM tide.sync_tree(t);
    IF to_regclass(format('tide_state.%I', 'log_' || t::oid)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE tide_state.%I', 'log_' || t::oid);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION tide.drop_log(regclass) FROM PUBLIC;

CREATE FUNCTION tide.unpublish(t regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
                WHERE p.pubname = 'tide_publication' AND r.prrelid = t) THEN
        EXECUTE format('ALTER PUBLICATION tide_publication DROP TABLE %s', t);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION tide.unpublish(regclass) FROM PUBLIC;

CREATE EVENT TRIGGER tide_sql_drop ON sql_drop EXECUTE FUNCTION tide.on_sql_drop();

-- ALTER TABLE on a view's table: the view must keep exactly its query's
-- columns (so a changed column list is refused), and its query's view follows
-- the table's owner (maintenance runs with the owner's rights). Renames,
-- SET SCHEMA, indexes, storage settings are the user's to make.
CREATE FUNCTION tide.on_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT DISTINCT c.view, c.definition
          FROM pg_event_trigger_ddl_commands() d
          JOIN tide.catalog c ON c.view = d.objid
         WHERE d.classid = 'pg_class'::regclass
    LOOP
        IF (SELECT array_agg(ROW(attname, atttypid, atttypmod, attcollation)::text ORDER BY attnum)
              FROM pg_attribute WHERE attrelid = v.view AND attnum > 0 AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT array_agg(ROW(attname, atttypid, atttypmod, attcollation)::text ORDER BY attnum)
              FROM pg_attribute WHERE attrelid = v.definition AND attnum > 0 AND NOT attisdropped)
        THEN
            RAISE EXCEPTION 'cannot change the columns of pg_tide view %', v.view::regclass
                USING ERRCODE = 'wrong_object_type',
                      DETAIL = 'A pg_tide view has exactly the columns of its query.',
                      HINT = 'Create a new view with tide.create_view, or drop this one.';
        END IF;
        IF (SELECT relowner FROM pg_class WHERE oid = v.view) <> (SELECT relowner FROM pg_class WHERE oid = v.definition) THEN
            EXECUTE format('ALTER VIEW %s OWNER TO %I', v.definition::regclass,
                           (SELECT relowner::regrole::text FROM pg_class WHERE oid = v.view));
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tide.on_ddl_command_end() FROM PUBLIC;

CREATE EVENT TRIGGER tide_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION tide.on_ddl_command_end();

-- What row-level security makes of tables: whether it is enabled and forced,
-- their owners (who it does not apply to unless forced), their policies.
-- A view reads its tables as its owner, through the policies that apply to
-- the owner; pg_tide's plans carry them as conditions (src/analyze/security.rs).
CREATE FUNCTION tide.row_security(tables regclass[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(format('%s %s %s %s [%s]', c.oid, c.relowner, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT string_agg(format('%s %s %s %s %s %s', p.polname, p.polcmd, p.polpermissive, p.polroles,
                                         pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)), ', ' ORDER BY p.polname)
                  FROM pg_policy p WHERE p.polrelid = c.oid)), '; ' ORDER BY c.oid)
      FROM unnest(tables) t JOIN pg_class c ON c.oid = t::oid
$$;

-- A policy created, changed or dropped, row-level security enabled,
-- disabled or forced, or a table's owner changed: the views over the table
-- are rebuilt (a full refresh), in the same transaction.
CREATE FUNCTION tide.on_row_security_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT c.id, c.view, c.parent, tide.row_security(c.base_tables) AS now
               FROM tide.catalog c
              WHERE c.row_security IS DISTINCT FROM tide.row_security(c.base_tables)
              ORDER BY c.id LOOP
        UPDATE tide.catalog SET row_security = v.now WHERE id = v.id;
        -- (An internal view is rebuilt with the view that reads it.)
        IF v.parent IS NULL THEN
            PERFORM tide.refresh(v.view::text, "full" => true);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tide.on_row_security_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER tide_row_security_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
    EXECUTE FUNCTION tide.on_row_security_ddl();

-- A table created, attached, detached, inherited, disinherited or dropped
-- under a base table of pg_tide views: its triggers follow (tide.sync_tree),
-- and when the tree's rows changed so, the views over it are rebuilt
-- (immediate views now, deferred ones by their next refresh, as after a
-- TRUNCATE). WAL capture does not follow trees: refused.
CREATE FUNCTION tide.on_tree_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r oid;
BEGIN
    FOR r IN SELECT DISTINCT t.root FROM tide.tree_members t
             UNION SELECT DISTINCT b::oid FROM tide.catalog c, unnest(c.base_tables) b
              WHERE (SELECT relhassubclass FROM pg_class WHERE oid = b) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r) THEN
            DELETE FROM tide.tree_members t WHERE t.root = r;
            CONTINUE;
        END IF;
        IF tide.sync_tree(r::regclass) THEN
            IF EXISTS (SELECT 1 FROM tide.catalog c WHERE c.capture = 'wal' AND r::regclass = ANY (c.base_tables)) THEN
                RAISE EXCEPTION 'the tables under % changed, and a pg_tide view reads it with WAL capture', r::regclass
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'Switch its views to trigger capture first: tide.alter_view(name, capture => ''trigger'').';
            END IF;
            PERFORM tide.rebuild_readers(r);
            IF to_regclass(format('tide_state.%I', 'log_' || r)) IS NOT NULL THEN
                EXECUTE format('INSERT INTO tide_state.%I (new) VALUES (NULL)', 'log_' || r);
                PERFORM tide.notify_refresher();
            END IF;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tide.on_tree_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER tide_tree_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'DROP TABLE', 'CREATE FOREIGN TABLE', 'DROP FOREIGN TABLE')
    EXECUTE FUNCTION tide.on_tree_ddl();

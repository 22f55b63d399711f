-- Runs last in the extension script, after the functions of the library exist.

CREATE VIEW tide.views AS
SELECT c.view            AS name,
       c.query,
       pg_catalog.pg_get_viewdef(c.definition, true) AS definition,
       c.mode,
       c.status,
       c.row_count,
       c.created_at,
       c.last_refresh_at,
       c.last_refresh_ms,
       c.last_error,
       c.base_tables,
       c.refresh_interval,
       CASE WHEN c.mode = 'deferred' THEN c.capture END AS capture,
       CASE WHEN c.mode = 'deferred' THEN tide.pending_changes(c.id) END AS pending_changes,
       CASE WHEN c.mode = 'deferred' THEN tide.lag_seconds(c.id) END AS lag_seconds,
       c.last_changes,
       CASE WHEN c.mode = 'deferred' AND c.capture = 'wal' THEN
           (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint
              FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = 'tide_' || (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
       END AS wal_lag_bytes,
       b.rows_done AS build_rows_done,
       b.rows_estimated AS build_rows_estimated
  FROM tide.catalog c
  LEFT JOIN LATERAL tide.build_progress(c.id) b ON true
 WHERE c.parent IS NULL;
COMMENT ON VIEW tide.views IS 'One row per pg_tide view';
GRANT SELECT ON tide.views TO PUBLIC;

-- Internal: called by the sql_drop event trigger.
REVOKE ALL ON FUNCTION tide.notify_refresher() FROM PUBLIC;
-- Internal: called by the event trigger on tables created, attached or dropped in trees.
REVOKE ALL ON FUNCTION tide.rebuild_readers(oid) FROM PUBLIC;

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
       c.last_changes
  FROM tide.catalog c
 WHERE c.parent IS NULL;
COMMENT ON VIEW tide.views IS 'One row per pg_tide view';
GRANT SELECT ON tide.views TO PUBLIC;

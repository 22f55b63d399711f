//! pg_tide's catalog (`tide.catalog`, shown as `tide.views`): one row per view.
//!
//! Users may read the catalog but not write it; pg_tide writes it with
//! `as_superuser`, the way PostgreSQL's own commands write system catalogs on a
//! user's behalf.

use crate::pg::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// A pg_tide view, as the engine needs it: its catalog id, its table, its
/// query's view, and its owner (whose rights maintenance runs with).
#[derive(Debug, Clone)]
pub struct ViewRef {
    pub id: i64,
    pub view: pg_sys::Oid,
    pub definition: pg_sys::Oid,
    pub owner: pg_sys::Oid,
}

/// Run `f` as the bootstrap superuser, in a security-restricted operation,
/// restoring the caller's identity afterwards, also when `f` raises an error.
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    crate::pg::as_user(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), None, f)
}

/// The next view id (names the view's objects in `tide_state`).
pub fn next_id() -> i64 {
    as_superuser(|| Spi::get_one::<i64>("SELECT nextval('tide.catalog_id_seq')")).ok().flatten().expect("nextval returns a value")
}

#[allow(clippy::too_many_arguments)]
pub fn insert(
    id: i64,
    view: pg_sys::Oid,
    definition: pg_sys::Oid,
    query: &str,
    mode: &str,
    rows: Option<i64>,
    ms: f64,
    base_tables: &[pg_sys::Oid],
) {
    // A view without rows yet is built in the background.
    let status = if rows.is_some() { "ready" } else { "building" };
    as_superuser(|| {
        Spi::run_with_args(
            "INSERT INTO tide.catalog (id, view, definition, query, mode, status, row_count, last_refresh_at, last_refresh_ms, base_tables, row_security) \
             VALUES ($1, $2, $3, $4, $5, $9, $6, CASE WHEN $6 IS NOT NULL THEN now() END, $7, $8::oid[]::regclass[], tide.row_security($8::oid[]::regclass[]))",
            &[
                id.into(),
                view.into(),
                definition.into(),
                query.into(),
                mode.into(),
                rows.into(),
                ms.into(),
                base_tables.to_vec().into(),
                status.into(),
            ],
        )?;
        Spi::run_with_args("INSERT INTO tide.view_locks (view_id) VALUES ($1)", &[id.into()])
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not register the view: {e}"), None, None));
}

/// Mark view `id` as the internal view of a sub-query of view `parent`.
pub fn set_parent(id: i64, parent: i64) {
    as_superuser(|| Spi::run_with_args("UPDATE tide.catalog SET parent = $2 WHERE id = $1", &[id.into(), parent.into()]))
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not register the view: {e}"), None, None));
}

/// The internal views of view `id` (those of its sub-queries).
pub fn subqueries(id: i64) -> Vec<ViewRef> {
    fetch_all("c.parent = $1", id.into())
}

/// (query, table) of each internal view of view `id`.
pub fn internal_views(id: i64) -> Vec<(String, pg_sys::Oid)> {
    Spi::connect(|client| {
        let rows = client.select("SELECT query, view::oid FROM tide.catalog WHERE parent = $1 ORDER BY id", None, &[id.into()])?;
        let mut out = Vec::new();
        for row in rows {
            out.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid)));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the catalog: {e}"), None, None))
}

pub fn record_refresh(id: i64, rows: i64, ms: f64) {
    as_superuser(|| {
        Spi::run_with_args(
            "UPDATE tide.catalog SET status = 'ready', row_count = $2, last_refresh_at = now(), \
                    last_refresh_ms = $3, last_error = NULL WHERE id = $1",
            &[id.into(), rows.into(), ms.into()],
        )
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not record the refresh: {e}"), None, None));
}

/// The tables whose changes view `id` follows (as recorded at its creation).
pub fn base_tables(id: i64) -> Vec<pg_sys::Oid> {
    crate::pg::select_one::<Vec<pg_sys::Oid>>("SELECT base_tables::oid[] FROM tide.catalog WHERE id = $1", &[id.into()]).unwrap_or_default()
}

/// The capture of view `id`: 'trigger' or 'wal'.
pub fn capture(id: i64) -> String {
    crate::pg::select_one::<String>("SELECT capture FROM tide.catalog WHERE id = $1", &[id.into()]).unwrap_or_default()
}

/// The mode of view `id`: 'immediate' or 'deferred'.
pub fn mode(id: i64) -> String {
    crate::pg::select_one::<String>("SELECT mode FROM tide.catalog WHERE id = $1", &[id.into()]).unwrap_or_default()
}

/// The status of view `id`: 'ready', 'building', 'stale' or 'failed'.
pub fn status(id: i64) -> String {
    crate::pg::select_one::<String>("SELECT status FROM tide.catalog WHERE id = $1", &[id.into()]).unwrap_or_default()
}

/// Whether view `id` is the internal view of another view's sub-query.
pub fn is_internal(id: i64) -> bool {
    crate::pg::select_one::<bool>("SELECT parent IS NOT NULL FROM tide.catalog WHERE id = $1", &[id.into()]).unwrap_or(false)
}

/// The pg_tide view whose table is `view`, if it is one.
pub fn lookup(view: pg_sys::Oid) -> Option<ViewRef> {
    fetch("c.view = $1::oid::regclass", view.into())
}

/// The pg_tide view with catalog id `id`, if it still exists.
pub fn by_id(id: i64) -> Option<ViewRef> {
    fetch("c.id = $1", id.into())
}

fn fetch(condition: &str, arg: pgrx::datum::DatumWithOid<'_>) -> Option<ViewRef> {
    fetch_all(condition, arg).into_iter().next()
}

fn fetch_all(condition: &str, arg: pgrx::datum::DatumWithOid<'_>) -> Vec<ViewRef> {
    Spi::connect(|client| {
        let rows = client.select(
            format!(
                "SELECT c.id, c.view::oid, c.definition::oid, cl.relowner FROM tide.catalog c \
                   JOIN pg_catalog.pg_class cl ON cl.oid = c.view WHERE {condition} ORDER BY c.id"
            )
            .as_str(),
            None,
            &[arg],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(ViewRef {
                id: row.get::<i64>(1)?.unwrap_or_default(),
                view: row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                definition: row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                owner: row.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::InvalidOid),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the catalog: {e}"), None, None))
}

/// Resolve a view name (SQL identifier syntax, optionally schema-qualified)
/// and return its catalog row; error if it is no pg_tide view.
pub fn resolve(name: &str) -> ViewRef {
    let relid = crate::pg::select_one::<pg_sys::Oid>("SELECT $1::regclass::oid", &[name.into()]).expect("regclass resolves or raises");
    lookup(relid).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{name}\" is not a pg_tide view"),
            None,
            Some("tide.views lists the pg_tide views."),
        )
    })
}

/// Error unless the current user may manage the view (owns it, or is a member
/// of its owning role).
pub fn check_owner(entry: &ViewRef, action: &str) {
    let ok = crate::pg::select_one::<bool>(
        "SELECT pg_catalog.pg_has_role(relowner, 'USAGE') FROM pg_catalog.pg_class WHERE oid = $1",
        &[entry.view.into()],
    )
    .unwrap_or(false);
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of view {} to {action} it", crate::pg::qualified_relation_name(entry.view)),
            None,
            None,
        );
    }
}

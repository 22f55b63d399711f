//! Writing a view's rows: the full build, and the guard that keeps everyone
//! else from writing them.

use crate::pg::{self, raise};
use crate::sql;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Set while pg_tide itself writes a view's table. A backend-local flag,
    /// not a GUC, so that no user can set it.
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with writes to view tables allowed; the flag is cleared afterwards,
/// also when `f` raises an error.
pub fn writing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            WRITING.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(WRITING.with(|w| w.replace(true)));
    f()
}

/// BEFORE ... FOR EACH STATEMENT trigger on every view table: refuse
/// INSERT, UPDATE, DELETE, TRUNCATE and COPY that pg_tide does not make.
#[pg_trigger]
fn guard_view_write<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    if WRITING.with(|w| w.get()) {
        return Ok(None);
    }
    let relid = trigger.relid()?;
    raise(
        PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
        format!("cannot change pg_tide view {} directly", pg::qualified_relation_name(relid)),
        Some("pg_tide keeps the view equal to its query; its rows change only with its base tables.".into()),
        Some("Change the base tables, or call tide.refresh to rebuild the view."),
    )
}

/// Replace the view's rows with its query's result; returns the row count.
pub fn rebuild(view: &str, definition: &str, columns: &[String], delete_first: bool) -> i64 {
    writing(|| {
        let mut rows = 0;
        Spi::connect_mut(|client| {
            for stmt in sql::rebuild_statements(view, definition, columns, delete_first) {
                let result = client.update(stmt.as_str(), None, &[])?;
                rows = result.len() as i64;
            }
            Ok::<_, pgrx::spi::Error>(())
        })
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not build the view: {e}"), None, None));
        rows
    })
}

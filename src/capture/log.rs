//! Trigger capture for deferred views: change logs.
//!
//! Each base table of a deferred view has one change log,
//! `tide_state.log_<relid>`, shared by every deferred view over it. Its
//! statement-level AFTER triggers (with transition tables; no row triggers)
//! append each statement's rows in one INSERT ... SELECT: the deleted rows
//! (`new` false), the inserted ones (`new` true), both for an UPDATE, and a
//! row with `new` NULL for a TRUNCATE. Every row carries the writing
//! transaction's id (`xid`) and a number from `tide.change_seq` (`seq`).
//!
//! The log holds a column `c<attnum>` per column of the table, so that
//! renames of base columns need nothing; a column dropped from the table, or
//! whose type changed, is no longer logged (no view reads it: PostgreSQL
//! refuses to drop or retype a column a view uses), and a column added to
//! the table is added to the log by the next deferred view over it.
//!
//! A refresh reads, in its snapshot, the rows of transactions that the
//! view's applied snapshot did not see (see `refresh`), rebuilt as rows of
//! the table in tuplestores: the same old and new rows a statement's
//! transition tables hold, so that the immediate engine applies them.

use crate::catalog::as_superuser;
use crate::pg::{self, raise};
use crate::sql::ident;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// `tide_state."log_<relid>"`.
pub fn log_table(relid: pg_sys::Oid) -> String {
    format!("tide_state.{}", ident(&format!("log_{}", relid.to_u32())))
}

/// Make the change log of `relid` and its triggers if they are missing, and
/// add to the log the table's columns it lacks. Runs as superuser.
pub fn ensure_log(relid: pg_sys::Oid) {
    let log = log_table(relid);
    as_superuser(|| {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = 'tide_state'::regnamespace AND relname = $1)",
            &[format!("log_{}", relid.to_u32()).into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        let run = |sql: &str| {
            Spi::run(sql).unwrap_or_else(|e| {
                raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not make the change log: {e}"), None, None)
            })
        };
        if !exists {
            run(&format!(
                "CREATE TABLE {log} (seq bigint NOT NULL DEFAULT nextval('tide.change_seq'), \
                 xid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(), \
                 at timestamptz NOT NULL DEFAULT pg_catalog.now(), new boolean)"
            ));
            run(&format!("CREATE INDEX ON {log} (xid)"));
            // Dropped with its table.
            let log_oid = Spi::get_one_with_args::<pg_sys::Oid>("SELECT $1::regclass::oid", &[log.as_str().into()]).ok().flatten();
            if let Some(log_oid) = log_oid {
                // SAFETY: both relations exist.
                unsafe { crate::pg::record_relation_dependency(log_oid, relid, pg_sys::DependencyType::DEPENDENCY_AUTO) };
            }
        }
        // Its triggers, also on the tables under it in a partition or
        // inheritance tree (see tide.sync_tree).
        run(&format!("SELECT tide.install_log_triggers({}::regclass)", relid.to_u32()));
        // The table's columns the log lacks (all of them for a new log).
        let missing = Spi::connect(|client| {
            let rows = client.select(
                "SELECT 'c' || b.attnum, pg_catalog.format_type(b.atttypid, b.atttypmod), \
                        CASE WHEN b.attcollation <> 0 THEN pg_catalog.quote_ident(co.collname) END \
                   FROM pg_catalog.pg_attribute b \
                   LEFT JOIN pg_catalog.pg_collation co ON co.oid = b.attcollation \
                  WHERE b.attrelid = $1 AND b.attnum > 0 AND NOT b.attisdropped \
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute l WHERE l.attrelid = $2::regclass \
                                     AND l.attname = 'c' || b.attnum AND NOT l.attisdropped) \
                  ORDER BY b.attnum",
                None,
                &[relid.into(), log.as_str().into()],
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default(), row.get::<String>(3)?));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the columns: {e}"), None, None));
        for (name, ty, collation) in missing {
            let collate = collation.map(|c| format!(" COLLATE {c}")).unwrap_or_default();
            run(&format!("ALTER TABLE {log} ADD COLUMN {} {ty}{collate}", ident(&name)));
        }
    });
}

/// The columns of `relid` its log holds: (attnum, name in the table), in
/// attnum order; a log column whose table column was dropped or retyped is left out.
pub fn logged_columns(relid: pg_sys::Oid) -> Vec<(i16, String)> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT b.attnum, b.attname::text FROM pg_catalog.pg_attribute b \
               JOIN pg_catalog.pg_attribute l ON l.attrelid = $2::regclass AND l.attname = 'c' || b.attnum \
                AND NOT l.attisdropped AND l.atttypid = b.atttypid AND l.atttypmod = b.atttypmod \
              WHERE b.attrelid = $1 AND b.attnum > 0 AND NOT b.attisdropped ORDER BY b.attnum",
            None,
            &[relid.into(), log_table(relid).as_str().into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((row.get::<i16>(1)?.unwrap_or(0), row.get::<String>(2)?.unwrap_or_default()));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the change log: {e}"), None, None))
}

/// The statement that logs one kind of statement's rows.
fn log_statement(relid: pg_sys::Oid, event: &str) -> String {
    let log = log_table(relid);
    let columns = logged_columns(relid);
    let targets: Vec<String> = columns.iter().map(|(n, _)| ident(&format!("c{n}"))).collect();
    let rows = |alias: &str, table: &str, new: bool| {
        let values: Vec<String> = columns.iter().map(|(_, name)| format!("{alias}.{}", ident(name))).collect();
        let lead = if values.is_empty() { String::new() } else { format!(", {}", values.join(", ")) };
        format!("SELECT {new}{lead} FROM {table} {alias}")
    };
    let into =
        if targets.is_empty() { format!("INSERT INTO {log} (new)") } else { format!("INSERT INTO {log} (new, {})", targets.join(", ")) };
    match event {
        "INSERT" => format!("{into} {}", rows("n", "tide_new", true)),
        "DELETE" => format!("{into} {}", rows("o", "tide_old", false)),
        "UPDATE" => format!("{into} {} UNION ALL {}", rows("o", "tide_old", false), rows("n", "tide_new", true)),
        _ => format!("INSERT INTO {log} (new) VALUES (NULL)"),
    }
}

/// A log statement prepared for (trigger's table, event), with the invalidation count
/// it was made at (a column rename or drop makes it stale).
type PreparedLogStatements = HashMap<(pg_sys::Oid, &'static str), (u64, Rc<pg::Plan>)>;

thread_local! {
    static STATEMENTS: RefCell<PreparedLogStatements> = RefCell::new(HashMap::new());
}

/// AFTER ... FOR EACH STATEMENT trigger on a deferred view's base table:
/// append the statement's rows to the table's change log.
#[pg_trigger]
fn log_change<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    // The logged table; on a table under it in a tree, the statement's own
    // table, whose transition tables the log statement reads by column name.
    let relid = super::base_table(trigger)?;
    let own = trigger.relid()?;
    let ev = trigger.event();
    let event = if ev.fired_by_insert() {
        "INSERT"
    } else if ev.fired_by_update() {
        "UPDATE"
    } else if ev.fired_by_delete() {
        "DELETE"
    } else {
        "TRUNCATE"
    };
    let trigdata = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    // SAFETY: the trigger data PostgreSQL passed to this call.
    if event != "TRUNCATE" && unsafe { super::changed_rows(trigdata) } == 0 {
        return Ok(None);
    }
    // The writer may not write the log: it is written as superuser.
    pg::as_user(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), Some(c"pg_catalog, pg_temp"), || {
        Spi::connect_mut(|_client| {
            // SAFETY: the transition tables of this trigger invocation, for this SPI connection.
            unsafe { pg_sys::SPI_register_trigger_data(trigdata) };
            let now = crate::apply::invalidations();
            // (A plan is made for the transition tables' row type: one per trigger table.)
            let cached = STATEMENTS.with(|s| s.borrow().get(&(own, event)).filter(|(at, _)| *at == now).map(|(_, p)| p.clone()));
            let plan = cached.unwrap_or_else(|| {
                let plan = Rc::new(pg::Plan::prepare(&log_statement(relid, event), &[]));
                STATEMENTS.with(|s| s.borrow_mut().insert((own, event), (now, plan.clone())));
                plan
            });
            plan.execute(&[]);
        })
    });
    crate::scheduler::note_change();
    Ok(None)
}

/// The logged changes of one table that a refresh applies, as the table's
/// rows in tuplestores of the transaction.
pub struct Batch {
    pub relid: u32,
    pub old: *mut pg_sys::Tuplestorestate,
    pub new: *mut pg_sys::Tuplestorestate,
    pub rows: i64,
    pub truncated: bool,
}

/// `FROM ... WHERE ...` of the rows `l` of the log of `relid` that view
/// `root` has not applied (as the current snapshot sees the log).
pub fn pending(relid: pg_sys::Oid, root: i64) -> String {
    format!(
        "FROM {} l, tide.catalog c WHERE c.id = {root} \
           AND l.xid >= pg_catalog.pg_snapshot_xmin(c.applied_snapshot) \
           AND CASE WHEN l.xid = c.applied_xid THEN l.seq > c.applied_seq \
                    ELSE NOT pg_catalog.pg_visible_in_snapshot(l.xid, c.applied_snapshot) END",
        log_table(relid)
    )
}

/// How many changes of `relid` view `root` has not applied, and whether a
/// TRUNCATE is among them, in the refresh's snapshot (set by
/// `pg::with_snapshot`): a batch that will not be applied row by row (the
/// view is rebuilt) is only counted, not read. Runs as superuser.
pub fn count_pending(relid: pg_sys::Oid, root: i64) -> (i64, bool) {
    let counts = pg::query_int8s(&format!("SELECT count(*), count(*) FILTER (WHERE l.new IS NULL) {}", pending(relid, root)), 2);
    (counts[0].unwrap_or(0), counts[1].unwrap_or(0) > 0)
}

/// Read the changes of `relid` that view `root` has not applied, in the
/// refresh's snapshot (set by `pg::with_snapshot`). Runs as superuser,
/// inside an SPI connection.
///
/// # Safety
/// `snapshot` must be registered; the tuplestores returned live in the
/// transaction's memory, to be ended by the caller.
pub unsafe fn read_batch(relid: pg_sys::Oid, root: i64, snapshot: pg_sys::Snapshot) -> Batch {
    let columns = logged_columns(relid);
    let list: String = columns.iter().map(|(n, _)| format!(", l.{}", ident(&format!("c{n}")))).collect();
    let sql = format!("SELECT l.new{list} {}", pending(relid, root));
    let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let desc = pg_sys::CreateTupleDescCopy((*rel).rd_att);
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    let natts = (*desc).natts as usize;

    let old_cxt = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
    let old_owner = pg_sys::CurrentResourceOwner;
    pg_sys::CurrentResourceOwner = pg_sys::CurTransactionResourceOwner;
    let batch_old = pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem);
    let batch_new = pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem);
    pg_sys::CurrentResourceOwner = old_owner;
    pg_sys::MemoryContextSwitchTo(old_cxt);

    let text = std::ffi::CString::new(sql).expect("no NUL in generated SQL");
    let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
    pg_sys::PushActiveSnapshot(snapshot);
    let portal = pg_sys::SPI_cursor_open(std::ptr::null(), plan, std::ptr::null_mut(), std::ptr::null(), true);
    pg_sys::PopActiveSnapshot();
    let mut batch = Batch { relid: relid.to_u32(), old: batch_old, new: batch_new, rows: 0, truncated: false };
    let mut values = vec![pg_sys::Datum::from(0); natts];
    let mut nulls = vec![true; natts];
    loop {
        pg_sys::SPI_cursor_fetch(portal, true, 10_000);
        let n = pg_sys::SPI_processed as usize;
        if n == 0 {
            break;
        }
        let table = pg_sys::SPI_tuptable;
        for i in 0..n {
            let tuple = *(*table).vals.add(i);
            let mut isnull = false;
            let new = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, 1, &mut isnull);
            if isnull {
                batch.truncated = true;
                continue;
            }
            nulls.iter_mut().for_each(|n| *n = true);
            for (k, (attnum, _)) in columns.iter().enumerate() {
                let mut isnull = false;
                let d = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, k as i32 + 2, &mut isnull);
                values[*attnum as usize - 1] = d;
                nulls[*attnum as usize - 1] = isnull;
            }
            let row = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            let store = if bool::from_datum(new, false).unwrap_or(false) { batch.new } else { batch.old };
            pg_sys::tuplestore_puttuple(store, row);
            pg_sys::heap_freetuple(row);
            batch.rows += 1;
        }
        pg_sys::SPI_freetuptable(table);
    }
    pg_sys::SPI_cursor_close(portal);
    pg_sys::SPI_freeplan(plan);
    batch
}

/// Delete the log rows of `relid` that every deferred view over it has
/// applied: those of transactions older than each view's applied snapshot.
///
/// One transaction at a time trims a log, and one that finds another at it
/// skips (the rows wait for the next refresh): two refreshes of different
/// views over one table, each holding its view's lock, would otherwise wait
/// on each other's deleted rows, and a transaction refreshing several views
/// (`SELECT tide.refresh(name) FROM tide.views`) beside the background
/// refresher could deadlock with it.
pub fn trim(relid: pg_sys::Oid) {
    let key = format!("pg_tide trim {}", relid.to_u32());
    let mine = pg::query_int8s(
        &format!("SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext({}))::int::int8", pgrx::spi::quote_literal(&key)),
        1,
    );
    if mine[0] != Some(1) {
        return;
    }
    pg::execute_sql(&format!(
        "DELETE FROM {} WHERE xid < (SELECT min(pg_catalog.pg_snapshot_xmin(applied_snapshot)) FROM tide.catalog \
          WHERE mode = 'deferred' AND {}::regclass = ANY (base_tables))",
        log_table(relid),
        relid.to_u32()
    ));
}

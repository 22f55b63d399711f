//! Running it: each view's delta statements, compiled and prepared once per
//! backend and executed as the view's owner; full builds; and the guard that
//! keeps everyone else from writing a view's rows.

pub use crate::catalog::ViewRef;
use crate::delta::aggregate::Grouped;
use crate::delta::bag::Bag;
use crate::delta::join::Change;
use crate::delta::plan::{Shape, ViewPlan};
use crate::pg::{self, raise};
use crate::sql;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

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
fn rebuild_rows(view: &str, definition: &str, columns: &[String]) -> i64 {
    writing(|| {
        let mut rows = 0;
        Spi::connect_mut(|client| {
            for stmt in sql::rebuild_statements(view, definition, columns) {
                let result = client.update(stmt.as_str(), None, &[])?;
                rows = result.len() as i64;
            }
            Ok::<_, pgrx::spi::Error>(())
        })
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not build the view: {e}"), None, None));
        rows
    })
}

// ---------------------------------------------------------------------------
// Incremental maintenance.

/// A view's plan and its statements, prepared once per backend.
pub struct Compiled {
    pub plan: ViewPlan,
    view: String,
    definition: String,
    /// `tide_state."state_<id>"` for grouped views.
    state: Option<String>,
    comparable: Vec<bool>,
    view_id: i64,
    statements: RefCell<HashMap<Change, Rc<Prepared>>>,
}

/// The prepared statements that apply one kind of change.
struct Prepared {
    /// Run in order. For a grouped view, the last returns (groups emptied,
    /// groups to recompute).
    main: Vec<OwnedPreparedStatement>,
    /// Grouped views: run when groups lost their min/max, then (without
    /// GROUP BY) to write the row, then when groups emptied.
    recompute: Option<OwnedPreparedStatement>,
    publish: Option<OwnedPreparedStatement>,
    purge: Option<OwnedPreparedStatement>,
}

thread_local! {
    static COMPILED: RefCell<HashMap<i64, Rc<Compiled>>> = RefCell::new(HashMap::new());
    /// Set by the relcache callback: names or definitions may have changed.
    static STALE: Cell<bool> = const { Cell::new(false) };
}

/// Register the relcache callback that marks compiled views stale. Called
/// from _PG_init. Plans are not freed in the callback (it may run while one
/// executes), only dropped at the next use.
pub fn init() {
    // SAFETY: registering a static callback with PostgreSQL at library load.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0)) }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    STALE.with(|s| s.set(true));
}

/// The state table of view `id`.
pub fn state_table(id: i64) -> String {
    format!("tide_state.{}", sql::ident(&format!("state_{id}")))
}

thread_local! {
    /// Immediate views reading each base table, as last read from the catalog.
    static READERS: RefCell<HashMap<pg_sys::Oid, Rc<Vec<ViewRef>>>> = RefCell::new(HashMap::new());
    /// The kept plan of the catalog lookup.
    static READERS_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Drop what the relcache callback made stale: compiled views and the
/// lists of views per table. (Creating or dropping a view creates or drops
/// relations, whose invalidations reach every backend.)
fn forget_if_stale() {
    if STALE.with(|s| s.replace(false)) {
        COMPILED.with(|c| c.borrow_mut().clear());
        READERS.with(|r| r.borrow_mut().clear());
    }
}

/// Immediate views reading `relid`, from a per-backend cache.
///
/// The catalog is read with the latest snapshot, not the transaction's: a
/// REPEATABLE READ transaction that began before a view was created must
/// still maintain it when it writes the view's base table afterwards.
/// (create_view holds a SHARE lock on the base tables until it commits, so
/// no write can fall between the view's build and its capture.)
pub fn views_reading(relid: pg_sys::Oid) -> Rc<Vec<ViewRef>> {
    forget_if_stale();
    if let Some(v) = READERS.with(|r| r.borrow().get(&relid).cloned()) {
        return v;
    }
    let views = Rc::new(read_views(relid));
    READERS.with(|r| r.borrow_mut().insert(relid, views.clone()));
    views
}

fn read_views(relid: pg_sys::Oid) -> Vec<ViewRef> {
    const SQL: &std::ffi::CStr = c"SELECT c.id, c.view::oid, c.definition::oid, cl.relowner FROM tide.catalog c \
        JOIN pg_catalog.pg_class cl ON cl.oid = c.view \
        WHERE $1::regclass = ANY (c.base_tables) AND c.mode = 'immediate' ORDER BY c.id";
    // SAFETY: SPI calls between connect and finish on the backend thread; the
    // kept plan lives for the backend; the snapshot is registered while used;
    // tuples are read before SPI_finish frees them.
    unsafe {
        pg_sys::SPI_connect();
        let mut plan = READERS_PLAN.with(|p| p.get());
        if plan.is_null() {
            let mut argtypes = [pg_sys::OIDOID];
            plan = pg_sys::SPI_prepare(SQL.as_ptr(), 1, argtypes.as_mut_ptr());
            pg_sys::SPI_keepplan(plan);
            READERS_PLAN.with(|p| p.set(plan));
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let mut values = [pg_sys::Datum::from(relid)];
        let nulls = [b' ' as std::ffi::c_char];
        let rc = pg_sys::SPI_execute_snapshot(plan, values.as_mut_ptr(), nulls.as_ptr(), snapshot, std::ptr::null_mut(), true, false, 0);
        pg_sys::UnregisterSnapshot(snapshot);
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            pg_sys::SPI_finish();
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the catalog (SPI code {rc})"), None, None);
        }
        let table = pg_sys::SPI_tuptable;
        let mut out = Vec::new();
        for i in 0..pg_sys::SPI_processed as usize {
            let tuple = *(*table).vals.add(i);
            let get = |col: i32| {
                let mut isnull = false;
                let d = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, col, &mut isnull);
                (d, isnull)
            };
            out.push(ViewRef {
                id: i64::from_datum(get(1).0, get(1).1).unwrap_or_default(),
                view: pg_sys::Oid::from_datum(get(2).0, get(2).1).unwrap_or(pg_sys::InvalidOid),
                definition: pg_sys::Oid::from_datum(get(3).0, get(3).1).unwrap_or(pg_sys::InvalidOid),
                owner: pg_sys::Oid::from_datum(get(4).0, get(4).1).unwrap_or(pg_sys::InvalidOid),
            });
        }
        pg_sys::SPI_finish();
        out
    }
}

/// The compiled view, from the cache or compiled now (as its owner, with
/// the pinned search_path, so that deparsed names mean the same at run time).
pub fn compiled(view: &ViewRef) -> Rc<Compiled> {
    forget_if_stale();
    if let Some(c) = COMPILED.with(|c| c.borrow().get(&view.id).cloned()) {
        return c;
    }
    let c = Rc::new(as_owner(view.owner, || {
        // SAFETY: the definition view exists (the catalog row references it
        // and dropping it removes the row); it is opened and closed here.
        let internal_views = crate::catalog::internal_views(view.id);
        let plan = unsafe { crate::analyze::plan::view_plan(crate::analyze::plan_query(view.definition, &internal_views)) };
        compile(view.id, view.view, view.definition, plan)
    }));
    COMPILED.with(|m| m.borrow_mut().insert(view.id, c.clone()));
    c
}

pub fn compile(id: i64, view: pg_sys::Oid, definition: pg_sys::Oid, plan: ViewPlan) -> Compiled {
    let comparable = pg::columns(definition).into_iter().map(|(_, t)| pg::has_equality(t)).collect();
    let state = matches!(plan.shape, Shape::Grouped { .. }).then(|| state_table(id));
    Compiled {
        plan,
        view: pg::qualified_relation_name(view),
        definition: pg::qualified_relation_name(definition),
        state,
        comparable,
        view_id: id,
        statements: RefCell::new(HashMap::new()),
    }
}

impl Compiled {
    pub fn grouped(&self) -> Option<Grouped<'_>> {
        match &self.plan.shape {
            Shape::Grouped { keys, aggs, columns, having } => Some(Grouped {
                terms: &self.plan.terms,
                source: &self.plan.source,
                keys,
                aggs,
                columns,
                having: having.as_deref(),
                state: self.state.as_deref().unwrap_or_default(),
                view: &self.view,
                id: self.view_id,
                comparable: &self.comparable,
            }),
            Shape::Bag { .. } | Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. } => None,
        }
    }

    pub fn window(&self) -> Option<crate::delta::window::Window<'_>> {
        match &self.plan.shape {
            Shape::Window { columns, keys, refill } => {
                Some(crate::delta::window::Window { terms: &self.plan.terms, view: &self.view, columns, keys, refill })
            }
            _ => None,
        }
    }

    pub fn bag(&self) -> Option<Bag<'_>> {
        match &self.plan.shape {
            Shape::Bag { columns, multiplicity } => Some(Bag {
                terms: &self.plan.terms,
                columns,
                multiplicity: multiplicity.as_deref(),
                comparable: &self.comparable,
                view: &self.view,
                view_id: self.view_id,
            }),
            Shape::Grouped { .. } | Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. } => None,
        }
    }

    /// Prepare the statements that apply a change.
    fn prepare(&self, client: &pgrx::spi::SpiClient<'_>, change: &Change) -> Result<Prepared, pgrx::spi::Error> {
        let keep = |sql: String| client.prepare_mut(sql.as_str(), &[]).map(|p| p.keep());
        if let Shape::TopK { columns, refill, .. } = &self.plan.shape {
            let t = crate::delta::topk::TopK { view: &self.view, columns, refill };
            let main = t.apply().into_iter().map(keep).collect::<Result<Vec<_>, _>>()?;
            return Ok(Prepared { main, recompute: None, publish: None, purge: None });
        }
        if let Shape::Recompute { columns, query } = &self.plan.shape {
            let r = crate::delta::recompute::Recompute { view: &self.view, columns, comparable: &self.comparable, query };
            return Ok(Prepared { main: vec![keep(r.apply())?], recompute: None, publish: None, purge: None });
        }
        if let Some(w) = self.window() {
            return Ok(Prepared { main: vec![keep(w.apply(change))?], recompute: None, publish: None, purge: None });
        }
        if let Some(g) = self.grouped() {
            Ok(Prepared {
                main: vec![keep(g.apply(change))?],
                recompute: g.recompute().map(keep).transpose()?,
                publish: g.publish().map(keep).transpose()?,
                purge: Some(keep(g.purge())?),
            })
        } else {
            let b = self.bag().expect("a bag when not grouped");
            let mut main = Vec::new();
            // Writers that take turns on the view (see lock_view) need no row locks.
            let lock_rows = if self.plan.needs_view_lock() { None } else { b.lock_rows(change) };
            for sql in lock_rows.into_iter().chain([b.apply(change)]) {
                main.push(keep(sql)?);
            }
            Ok(Prepared { main, recompute: None, publish: None, purge: None })
        }
    }

    /// Statements to rebuild the view's state in full (the view's rows are
    /// rebuilt from its query by `rebuild`).
    pub fn rebuild_sql(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(g) = self.grouped() {
            v.push(format!("DELETE FROM {}", g.state));
            v.push(format!("INSERT INTO {} SELECT b.*, false, false FROM ({}) b", g.state, g.backfill_query()));
            for (table, query) in g.distinct_tables() {
                v.push(format!("DELETE FROM {table}"));
                v.push(format!("INSERT INTO {table} {query}"));
            }
        }
        v
    }
}

/// Run `f` as the view's owner in a security-restricted operation with
/// search_path pinned to pg_catalog, restoring both afterwards.
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    pg::as_user(owner, Some(c"pg_catalog, pg_temp"), f)
}

/// Apply a change to the view. `register` makes the change's rows visible
/// to the statements (transition tables, or rows collected in a round) in
/// the SPI connection it is called in.
pub fn maintain(view: &ViewRef, compiled: &Compiled, change: &Change, register: &dyn Fn()) {
    as_owner(view.owner, || {
        writing(|| {
            Spi::connect_mut(|client| {
                register();
                if compiled.plan.needs_view_lock() {
                    lock_view(client, view.id)?;
                }
                let existing = compiled.statements.borrow().get(change).cloned();
                let prepared = match existing {
                    Some(p) => p,
                    None => {
                        let p = Rc::new(compiled.prepare(client, change)?);
                        compiled.statements.borrow_mut().insert(change.clone(), p.clone());
                        p
                    }
                };
                // (groups emptied, groups to recompute, groups touched)
                let mut counts = (0i64, 0i64, 0i64);
                for stmt in prepared.main.iter() {
                    let result = client.update(stmt, None, &[])?;
                    if compiled.state.is_some() {
                        let (emptied, recompute, touched) = result.first().get_three::<i64, i64, i64>()?;
                        counts = (emptied.unwrap_or(0), recompute.unwrap_or(0), touched.unwrap_or(0));
                    }
                }
                // Groups that lost their min/max first (they may also have emptied).
                if let (Some(stmt), true) = (&prepared.recompute, counts.1 > 0) {
                    client.update(stmt, None, &[])?;
                }
                if let (Some(stmt), true) = (&prepared.publish, counts.2 > 0) {
                    client.update(stmt, None, &[])?;
                }
                if let (Some(stmt), true) = (&prepared.purge, counts.0 > 0) {
                    client.update(stmt, None, &[])?;
                }
                Ok::<_, pgrx::spi::Error>(())
            })
            .unwrap_or_else(|e| {
                raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not maintain view {}: {e}", compiled.view), None, None)
            })
        })
    })
}

thread_local! {
    /// The statement that takes a view's turn, prepared once per backend.
    static LOCK_VIEW: RefCell<Option<Rc<OwnedPreparedStatement>>> = const { RefCell::new(None) };
}

/// Take the view's turn: writers of a join view's inputs go one at a time.
fn lock_view(client: &mut pgrx::spi::SpiClient<'_>, id: i64) -> Result<(), pgrx::spi::Error> {
    crate::catalog::as_superuser(|| {
        let stmt = match LOCK_VIEW.with(|l| l.borrow().clone()) {
            Some(s) => s,
            None => {
                let sql = "UPDATE tide.view_locks SET version = version + 1 WHERE view_id = $1";
                let s = Rc::new(client.prepare_mut(sql, &[pgrx::PgBuiltInOids::INT8OID.oid()])?.keep());
                LOCK_VIEW.with(|l| *l.borrow_mut() = Some(s.clone()));
                s
            }
        };
        client.update(stmt.as_ref(), None, &[id.into()]).map(|_| ())
    })
}

/// Rebuild view `id` (and its state) in full from its query.
pub fn rebuild_view_by_id(id: i64) {
    if let Some(view) = crate::catalog::by_id(id) {
        rebuild_view(&view);
    }
}

/// Rebuild a view (and its state) in full; returns its row count.
pub fn rebuild_view(view: &ViewRef) -> i64 {
    let compiled = compiled(view);
    as_owner(view.owner, || {
        Spi::connect_mut(|client| {
            if compiled.plan.needs_view_lock() {
                lock_view(client, view.id)?;
            }
            for sql in compiled.rebuild_sql() {
                client.update(sql.as_str(), None, &[])?;
            }
            Ok::<_, pgrx::spi::Error>(())
        })
        .unwrap_or_else(|e| {
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not rebuild view {}: {e}", compiled.view), None, None)
        });
        let columns: Vec<String> = pg::columns(view.definition).into_iter().map(|(n, _)| n).collect();
        rebuild_rows(&compiled.view, &compiled.definition, &columns)
    })
}

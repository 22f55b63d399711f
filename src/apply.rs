//! Running it: each view's delta statements, compiled and prepared once per
//! backend and executed as the view's owner; full builds; and the guard that
//! keeps everyone else from writing a view's rows.

pub use crate::catalog::ViewRef;
use crate::delta::aggregate::Grouped;
use crate::delta::bag::Bag;
use crate::delta::join::{round_table, Change, Event, NEW_TABLE, OLD_TABLE};
use crate::delta::plan::{Shape, ViewPlan};
use crate::pg::{self, raise};
use crate::sql;
use pgrx::pg_sys;
use pgrx::prelude::*;
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

/// Replace a table's rows (see `sql::Refill`); returns the rows inserted.
fn refill(r: &sql::Refill) -> u64 {
    writing(|| {
        pg::execute_sql(&format!("DELETE FROM {}", r.table));
        pg::fill_table(pg::relid_of(&r.table), &r.insert, &r.select)
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
    /// Per view column: its type's equality operator (see `pg::equality_operator`).
    equality: Vec<Option<String>>,
    view_id: i64,
    /// Per kind of change and size class of its rows (see `size_class`).
    statements: RefCell<HashMap<(Change, u8), Rc<Prepared>>>,
}

/// The prepared statements that apply one kind of change.
struct Prepared {
    /// Run in order. For a grouped view, the last returns (groups emptied,
    /// groups to recompute).
    main: Vec<pg::Plan>,
    /// Grouped views: run when groups lost their min/max, then (without
    /// GROUP BY) to write the row, then when groups emptied.
    recompute: Option<pg::Plan>,
    publish: Option<pg::Plan>,
    purge: Option<pg::Plan>,
}

thread_local! {
    static COMPILED: RefCell<HashMap<i64, Rc<Compiled>>> = RefCell::new(HashMap::new());
    /// Bumped by the relcache callback: names or definitions may have changed.
    static INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    /// The value of INVALIDATIONS the caches below were filled at.
    static SEEN: Cell<u64> = const { Cell::new(0) };
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
    INVALIDATIONS.with(|s| s.set(s.get() + 1));
}

/// The state table of view `id`.
pub fn state_table(id: i64) -> String {
    format!("tide_state.{}", sql::ident(&format!("state_{id}")))
}

/// The views reading a base table, as last read from the catalog.
struct Readers {
    immediate: Rc<Vec<ViewRef>>,
    deferred: Vec<ViewRef>,
}

thread_local! {
    static READERS: RefCell<HashMap<pg_sys::Oid, Readers>> = RefCell::new(HashMap::new());
    /// Catalog rows by view id, as last read.
    static BY_ID: RefCell<HashMap<i64, Option<ViewRef>>> = RefCell::new(HashMap::new());
    /// The deferred views being refreshed now (a view and its internal
    /// views): while set, they are maintained like immediate views from the
    /// writes the refresh makes to the internal views' tables.
    static REFRESHING: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
    /// The kept plan of the catalog lookup.
    static READERS_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Drop what the relcache callback made stale: compiled views and the
/// lists of views per table. (Creating or dropping a view creates or drops
/// relations, whose invalidations reach every backend.)
fn forget_if_stale() {
    let now = invalidations();
    if SEEN.with(|s| s.replace(now)) != now {
        COMPILED.with(|c| c.borrow_mut().clear());
        READERS.with(|r| r.borrow_mut().clear());
        BY_ID.with(|r| r.borrow_mut().clear());
    }
}

/// How many relcache invalidations this backend has seen: a per-backend
/// cache of generated SQL is stale when this moved since it was filled.
pub fn invalidations() -> u64 {
    INVALIDATIONS.with(|s| s.get())
}

/// Run `f` with the deferred views `ids` maintained as immediate views
/// (see REFRESHING); restored afterwards, also on error.
pub fn refreshing<R>(ids: Vec<i64>, f: impl FnOnce() -> R) -> R {
    struct Reset(Vec<i64>);
    impl Drop for Reset {
        fn drop(&mut self) {
            REFRESHING.with(|r| *r.borrow_mut() = std::mem::take(&mut self.0));
        }
    }
    let _reset = Reset(REFRESHING.with(|r| std::mem::replace(&mut *r.borrow_mut(), ids)));
    f()
}

/// Immediate views reading `relid` (and deferred ones being refreshed), from a per-backend cache.
///
/// The catalog is read with the latest snapshot, not the transaction's: a
/// REPEATABLE READ transaction that began before a view was created must
/// still maintain it when it writes the view's base table afterwards.
/// (create_view holds a SHARE lock on the base tables until it commits, so
/// no write can fall between the view's build and its capture.)
pub fn views_reading(relid: pg_sys::Oid) -> Rc<Vec<ViewRef>> {
    forget_if_stale();
    if !READERS.with(|r| r.borrow().contains_key(&relid)) {
        let (immediate, deferred): (Vec<_>, Vec<_>) = read_views(relid).into_iter().partition(|(_, immediate)| *immediate);
        let readers = Readers {
            immediate: Rc::new(immediate.into_iter().map(|(v, _)| v).collect()),
            deferred: deferred.into_iter().map(|(v, _)| v).collect(),
        };
        READERS.with(|r| r.borrow_mut().insert(relid, readers));
    }
    READERS.with(|r| {
        let r = r.borrow();
        let readers = &r[&relid];
        let refreshing: Vec<ViewRef> =
            REFRESHING.with(|f| readers.deferred.iter().filter(|v| f.borrow().contains(&v.id)).cloned().collect());
        if refreshing.is_empty() {
            return readers.immediate.clone();
        }
        let mut all: Vec<ViewRef> = readers.immediate.iter().cloned().chain(refreshing).collect();
        all.sort_by_key(|v| v.id);
        Rc::new(all)
    })
}

/// The views reading `relid`, each with whether it is immediate.
fn read_views(relid: pg_sys::Oid) -> Vec<(ViewRef, bool)> {
    const SQL: &std::ffi::CStr = c"SELECT c.id, c.view::oid, c.definition::oid, cl.relowner, c.mode = 'immediate' FROM tide.catalog c \
        JOIN pg_catalog.pg_class cl ON cl.oid = c.view \
        WHERE $1::regclass = ANY (c.base_tables) ORDER BY c.id";
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
            out.push((
                ViewRef {
                    id: i64::from_datum(get(1).0, get(1).1).unwrap_or_default(),
                    view: pg_sys::Oid::from_datum(get(2).0, get(2).1).unwrap_or(pg_sys::InvalidOid),
                    definition: pg_sys::Oid::from_datum(get(3).0, get(3).1).unwrap_or(pg_sys::InvalidOid),
                    owner: pg_sys::Oid::from_datum(get(4).0, get(4).1).unwrap_or(pg_sys::InvalidOid),
                },
                bool::from_datum(get(5).0, get(5).1).unwrap_or(true),
            ));
        }
        pg_sys::SPI_finish();
        out
    }
}

/// The view with catalog id `id`, if it exists, from a per-backend cache
/// (maintenance looks views up by id for every statement; creating or
/// dropping one sends the invalidations that empty the cache).
pub fn view_by_id(id: i64) -> Option<ViewRef> {
    forget_if_stale();
    if let Some(v) = BY_ID.with(|m| m.borrow().get(&id).cloned()) {
        return v;
    }
    let v = crate::catalog::by_id(id);
    BY_ID.with(|m| m.borrow_mut().insert(id, v.clone()));
    v
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
    let equality = pg::columns(definition).into_iter().map(|(_, t)| pg::equality_operator(t)).collect();
    let state = matches!(plan.shape, Shape::Grouped { .. }).then(|| state_table(id));
    Compiled {
        plan,
        view: pg::qualified_relation_name(view),
        definition: pg::qualified_relation_name(definition),
        state,
        equality,
        view_id: id,
        statements: RefCell::new(HashMap::new()),
    }
}

impl Compiled {
    pub fn grouped(&self) -> Option<Grouped<'_>> {
        match &self.plan.shape {
            Shape::Grouped { keys, key_equality, aggs, columns, having } => Some(Grouped {
                terms: &self.plan.terms,
                source: &self.plan.source,
                keys,
                key_equality,
                aggs,
                columns,
                having: having.as_deref(),
                state: self.state.as_deref().unwrap_or_default(),
                view: &self.view,
                id: self.view_id,
                equality: &self.equality,
            }),
            Shape::Bag { .. } | Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. } => None,
        }
    }

    pub fn window(&self) -> Option<crate::delta::window::Window<'_>> {
        match &self.plan.shape {
            Shape::Window { columns, keys, key_equality, refill } => {
                Some(crate::delta::window::Window { terms: &self.plan.terms, view: &self.view, columns, keys, key_equality, refill })
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
                equality: &self.equality,
                view: &self.view,
                view_id: self.view_id,
            }),
            Shape::Grouped { .. } | Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. } => None,
        }
    }

    /// The indexes of a recursive query's view: on its columns, which its
    /// rows are found by (a recomputation's deletes, semi-naive inserts'
    /// checks), and on each column the recursive term joins on (the seed
    /// reads the view's rows that inserted rows join).
    pub fn recompute_indexes(&self) -> Vec<String> {
        let Shape::Recompute { columns, semi_naive, .. } = &self.plan.shape else { return Vec::new() };
        let probes = semi_naive.iter().flat_map(|s| s.joined.iter());
        crate::delta::bag::lookup_index(&self.view, columns, &self.equality)
            .into_iter()
            .chain(probes.map(|c| format!("CREATE INDEX ON {} ({})", self.view, sql::ident(c))))
            .collect()
    }

    /// Prepare the statements that apply a change.
    fn prepare(&self, change: &Change) -> Result<Prepared, pgrx::spi::Error> {
        let keep = |sql: String| Ok::<_, pgrx::spi::Error>(pg::Plan::prepare(&sql, &[]));
        if let Shape::TopK { columns, refill, .. } = &self.plan.shape {
            let t = crate::delta::topk::TopK { view: &self.view, columns, refill };
            let main = t.apply().into_iter().map(keep).collect::<Result<Vec<_>, _>>()?;
            return Ok(Prepared { main, recompute: None, publish: None, purge: None });
        }
        if let Shape::Recompute { columns, query, semi_naive } = &self.plan.shape {
            let r = crate::delta::recompute::Recompute { view: &self.view, columns, equality: &self.equality, query };
            let incremental = match (semi_naive, change) {
                // An INSERT: only rows to add.
                (Some(s), Change::Statement { relid, event: Event::Insert }) => {
                    s.apply(&self.view, &|t| (t == *relid).then(|| NEW_TABLE.to_string()))
                }
                // Several tables at once, none of which lost rows.
                (Some(s), Change::Round { relids, inserts_only: true, .. }) => {
                    s.apply(&self.view, &|t| relids.contains(&t).then(|| round_table(t, true)))
                }
                // A DELETE, or tables that only lost rows: delete and derive again.
                (Some(s), Change::Statement { relid, event: Event::Delete }) => {
                    s.delete(&self.view, &|t| (t == *relid).then(|| OLD_TABLE.to_string()))
                }
                // (One table only: a step using deleted rows of two would be
                // found by no seed, each reading the other table as it is now.)
                (Some(s), Change::Round { relids, deletes_only: true, .. })
                    if relids.iter().filter(|t| s.seeds.iter().any(|seed| seed.relid == **t)).count() == 1 =>
                {
                    s.delete(&self.view, &|t| relids.contains(&t).then(|| round_table(t, false)))
                }
                _ => None,
            };
            // (Written from ruleutils' text of the terms, marked: should a
            // query's text not take the marks as expected, the statement
            // does not prepare, and the component is computed again instead.)
            let semi_naive = incremental.and_then(|sql| {
                pg::in_subtransaction(|| pg::Plan::prepare(&sql, &[]))
                    .inspect_err(|e| log!("pg_tide: view {} recomputes its recursive query on this change: {e}", self.view))
                    .ok()
            });
            let main = match semi_naive {
                Some(plan) => plan,
                None => keep(r.apply())?,
            };
            return Ok(Prepared { main: vec![main], recompute: None, publish: None, purge: None });
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

    /// A full rebuild, in order: the state (grouped views), then the view's
    /// rows, from what is already maintained where there is something (the
    /// state; a top-K's internal view), else from the query.
    pub fn refills(&self, view_columns: &[String]) -> Vec<sql::Refill> {
        if let Some(g) = self.grouped() {
            let mut v = g.state_refills();
            v.push(g.view_refill());
            return v;
        }
        if let Shape::TopK { columns, refill, .. } = &self.plan.shape {
            return vec![crate::delta::topk::TopK { view: &self.view, columns, refill }.view_refill()];
        }
        vec![sql::view_refill(&self.view, &self.definition, view_columns)]
    }
}

/// Run `f` as the view's owner in a security-restricted operation with
/// search_path pinned to pg_catalog, restoring both afterwards.
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    pg::as_user(owner, Some(c"pg_catalog, pg_temp"), f)
}

/// The size class of a change of `rows` rows: its statements are planned
/// once per class, from the first change of that class. A plan made for a
/// one-row change (nested loops over index lookups) would be used for a
/// batch of a million rows otherwise, and the other way round; within a
/// class, sizes differ by at most 32x.
pub fn size_class(rows: u64) -> u8 {
    match rows {
        0..=32 => 0,
        33..=1024 => 1,
        1025..=32768 => 2,
        _ => 3,
    }
}

/// Apply a change of `rows` rows to the view. `register` makes the change's
/// rows visible to the statements (transition tables, or rows collected in
/// a round) in the SPI connection it is called in.
pub fn maintain(view: &ViewRef, compiled: &Compiled, change: &Change, rows: u64, register: &dyn Fn()) {
    // Without JIT: a change is small, and code JIT-compiled for a plan is
    // not kept between executions, so a delta statement whose estimate
    // passes jit_above_cost (a recursive query's, a join of big tables)
    // would compile for half a second at every change.
    as_owner(view.owner, || {
        pg::with_setting(c"jit", c"off", || {
            writing(|| {
                Spi::connect_mut(|_client| {
                    register();
                    if compiled.plan.needs_view_lock() {
                        lock_view(view.id)?;
                    }
                    let key = (change.clone(), size_class(rows));
                    let existing = compiled.statements.borrow().get(&key).cloned();
                    let prepared = match existing {
                        Some(p) => p,
                        None => {
                            let p = Rc::new(compiled.prepare(change)?);
                            compiled.statements.borrow_mut().insert(key, p.clone());
                            p
                        }
                    };
                    // (groups emptied, groups to recompute, groups touched)
                    let mut counts = (0i64, 0i64, 0i64);
                    for stmt in prepared.main.iter() {
                        stmt.execute(&[]);
                        if compiled.state.is_some() {
                            let c = pg::first_row_int8s(3);
                            counts = (c[0].unwrap_or(0), c[1].unwrap_or(0), c[2].unwrap_or(0));
                        }
                    }
                    // Groups that lost their min/max first (they may also have emptied).
                    if let (Some(stmt), true) = (&prepared.recompute, counts.1 > 0) {
                        stmt.execute(&[]);
                    }
                    if let (Some(stmt), true) = (&prepared.publish, counts.2 > 0) {
                        stmt.execute(&[]);
                    }
                    if let (Some(stmt), true) = (&prepared.purge, counts.0 > 0) {
                        stmt.execute(&[]);
                    }
                    Ok::<_, pgrx::spi::Error>(())
                })
                .unwrap_or_else(|e| {
                    raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not maintain view {}: {e}", compiled.view), None, None)
                })
            })
        })
    })
}

thread_local! {
    /// The statement that takes a view's turn, prepared once per backend.
    static LOCK_VIEW: RefCell<Option<Rc<pg::Plan>>> = const { RefCell::new(None) };
}

/// Take the view's turn: writers of a join view's inputs go one at a time.
fn lock_view(id: i64) -> Result<(), pgrx::spi::Error> {
    crate::catalog::as_superuser(|| {
        let stmt = match LOCK_VIEW.with(|l| l.borrow().clone()) {
            Some(s) => s,
            None => {
                let sql = "UPDATE tide.view_locks SET version = version + 1 WHERE view_id = $1";
                let s = Rc::new(pg::Plan::prepare(sql, &[pg_sys::INT8OID]));
                LOCK_VIEW.with(|l| *l.borrow_mut() = Some(s.clone()));
                s
            }
        };
        stmt.execute(&[pg_sys::Datum::from(id)]);
        Ok(())
    })
}

/// Rebuild view `id` (and its state) in full from its query.
pub fn rebuild_view_by_id(id: i64) {
    if let Some(view) = view_by_id(id) {
        rebuild_view(&view);
    }
}

/// Rebuild a view (and its state) in full; returns its row count.
pub fn rebuild_view(view: &ViewRef) -> i64 {
    let compiled = compiled(view);
    crate::progress::building(view.id, &compiled.view, || rebuild_compiled(view, &compiled))
}

fn rebuild_compiled(view: &ViewRef, compiled: &Compiled) -> i64 {
    as_owner(view.owner, || {
        if compiled.plan.needs_view_lock() {
            Spi::connect_mut(|_client| lock_view(view.id)).unwrap_or_else(|e| {
                raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not rebuild view {}: {e}", compiled.view), None, None)
            });
        }
        let columns: Vec<String> = pg::columns(view.definition).into_iter().map(|(n, _)| n).collect();
        // In order; the last refill writes the view's rows.
        let mut rows = 0;
        for r in compiled.refills(&columns) {
            rows = refill(&r);
        }
        rows as i64
    })
}

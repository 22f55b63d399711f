//! Small helpers over PostgreSQL's C API, shared by the pgrx-facing modules.
//! Every function here runs on the backend's main thread only.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::CStr;

/// Raise an ERROR with a SQLSTATE, message, and optional detail and hint. Never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, detail: Option<String>, hint: Option<&str>) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, message.into(), function_name!());
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// The elements of a pointer List, or nothing for NIL.
///
/// # Safety
/// `list` must be NIL or a valid pointer List whose elements are `*mut T`.
pub unsafe fn list<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    PgList::<T>::from_pg(list).iter_ptr().collect()
}

/// Owned copy of a C string; "" for NULL.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
pub unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Whether a node pointer is of the given tag.
///
/// # Safety
/// `node` must be NULL or point to a PostgreSQL Node.
pub unsafe fn is_a<T>(node: *mut T, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*(node as *mut pg_sys::Node)).type_ == tag
}

/// A node tree mutator: called on a node, returns its replacement.
pub type Mutator = unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut std::ffi::c_void) -> *mut pg_sys::Node;

/// `expression_tree_mutator` over `node`'s children: a copy of `node` whose
/// children are what `mutator` returns for them.
///
/// # Safety
/// `node` must be NULL or an expression tree; `mutator` must be a
/// `#[pg_guard]` function that accepts `ctx`.
pub unsafe fn mutate_children(node: *mut pg_sys::Node, mutator: Mutator, ctx: *mut std::ffi::c_void) -> *mut pg_sys::Node {
    // SAFETY: PostgreSQL declares the mutator callback without a prototype
    // and calls it as (Node *, void *), which is `Mutator`'s signature.
    let callback: unsafe extern "C-unwind" fn() -> *mut pg_sys::Node = std::mem::transmute(mutator);
    pg_sys::expression_tree_mutator(node, Some(callback), ctx)
}

unsafe extern "C-unwind" {
    // rewrite/rewriteManip.h
    fn IncrementVarSublevelsUp(node: *mut pg_sys::Node, delta_sublevels_up: std::ffi::c_int, min_sublevels_up: std::ffi::c_int);
}

/// PostgreSQL's `IncrementVarSublevelsUp`: the Vars (and aggregates) of
/// `node` at `min` levels up or more move `delta` levels further out.
///
/// # Safety
/// `node` must be NULL, a Query or an expression tree, changed in place.
pub unsafe fn increment_var_sublevels_up(node: *mut pg_sys::Node, delta: i32, min: i32) {
    pg_sys::ffi::pg_guard_ffi_boundary(|| IncrementVarSublevelsUp(node, delta, min));
}

/// `schema.name` of a relation, each part quoted only where needed.
pub fn qualified_relation_name(relid: pg_sys::Oid) -> String {
    // SAFETY: lookups by OID in the syscache; they return NULL for a missing
    // object, which `cstr` maps to "".
    unsafe {
        let nsp = cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
        let rel = cstr(pg_sys::get_rel_name(relid));
        format!("{}.{}", quote_ident(&nsp), quote_ident(&rel))
    }
}

/// PostgreSQL's own identifier quoting (quotes keywords, upper case, odd characters).
pub fn quote_ident(name: &str) -> String {
    pgrx::spi::quote_identifier(name)
}

// catalog/pg_inherits.h, which pgrx does not bind.
unsafe extern "C-unwind" {
    fn has_subclass(relation_id: pg_sys::Oid) -> bool;
    fn has_superclass(relation_id: pg_sys::Oid) -> bool;
}

/// Whether reading `relid` (with its descendants when `inh`) sees rows that
/// its statement triggers do not all show: a partition or inheritance child
/// (a statement on an ancestor changes its rows and fires only the
/// ancestor's triggers), or a parent read with ONLY (a statement on it
/// shows its children's rows too). The root of a tree read whole is not:
/// its triggers are put on every table under it.
pub fn partial_tree(relid: pg_sys::Oid, inh: bool) -> bool {
    // SAFETY: catalog reads by OID, called through the FFI guard so that an
    // ERROR becomes a Rust panic.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| has_superclass(relid) || (!inh && has_subclass(relid))) }
}

/// Whether `relid` has partitions or inheritance children.
pub fn has_children(relid: pg_sys::Oid) -> bool {
    // SAFETY: as in `partial_tree`.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| has_subclass(relid)) }
}

/// A relation's columns in order: (name, type).
pub fn columns(relid: pg_sys::Oid) -> Vec<(String, pg_sys::Oid)> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT attname::text, atttypid FROM pg_catalog.pg_attribute \
              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            None,
            &[relid.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid)));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the columns: {e}"), None, None))
}

/// Whether a type has an equality operator (so EXCEPT, GROUP BY and
/// ON CONFLICT can compare its values).
pub fn has_equality(typid: pg_sys::Oid) -> bool {
    type_equality(typid) != pg_sys::InvalidOid
}

/// The type's equality operator, from the type cache (InvalidOid: none).
fn type_equality(typid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a typcache lookup by type OID; the entry lives for the backend.
    unsafe { (*pg_sys::lookup_type_cache(typid, pg_sys::TYPECACHE_EQ_OPR as i32)).eq_opr }
}

/// The equality operator of a type (its default btree or hash class's), as
/// generated SQL writes it: `=` when it is in pg_catalog, else qualified
/// (`OPERATOR(ut.=)`), since maintenance runs with search_path pinned to
/// pg_catalog, where an unqualified `=` would not find it. None when the
/// type has no equality operator (json, point, xml).
pub fn equality_operator(typid: pg_sys::Oid) -> Option<String> {
    let op = type_equality(typid);
    (op != pg_sys::InvalidOid).then(|| operator_name(op))
}

/// An operator as generated SQL writes it: its bare name when it is in
/// pg_catalog, else `OPERATOR(schema.name)` (see `equality_operator`).
pub fn operator_name(op: pg_sys::Oid) -> String {
    // SAFETY: a syscache copy of the operator's row, released here.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::OPEROID as i32, pg_sys::Datum::from(op));
        if tuple.is_null() {
            return "=".into();
        }
        let form = pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_operator;
        let (nsp, name) = ((*form).oprnamespace, cstr((*form).oprname.data.as_ptr()));
        pg_sys::ReleaseSysCache(tuple);
        if nsp == pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
            return name;
        }
        format!("OPERATOR({}.{name})", quote_ident(&cstr(pg_sys::get_namespace_name(nsp))))
    }
}

/// The first column of the first row of a read-only query, through SPI's
/// read-only path: unlike pgrx's `Spi::get_one`, it does not make the
/// transaction take a transaction id (a transaction with one cannot create
/// a replication slot, and makes slot creation wait for it).
pub fn select_one<A: FromDatum + IntoDatum>(query: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Option<A> {
    Spi::connect(|client| client.select(query, Some(1), args)?.first().get_one::<A>()).ok().flatten()
}

/// Whether the transaction keeps one snapshot for all its statements
/// (REPEATABLE READ or SERIALIZABLE), taken at its first statement.
pub fn uses_transaction_snapshot() -> bool {
    // SAFETY: reads the backend's transaction isolation level.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// Whether the current transaction has inserted, updated, deleted or
/// truncated rows of `relid` (its pending statistics, per (sub)transaction
/// level, say so; pg_stat_get_xact_* would also count transactions not yet
/// flushed to the statistics).
#[cfg(any(feature = "pg15", feature = "pg16"))]
pub fn written_in_this_transaction(relid: pg_sys::Oid) -> bool {
    // SAFETY: reads this backend's pending statistics entry of the relation
    // and its per-transaction-level counters, which live until the
    // transaction ends.
    unsafe {
        let entry = pg_sys::find_tabstat_entry(relid);
        if entry.is_null() {
            return false;
        }
        let mut level = (*entry).trans;
        while !level.is_null() {
            let l = &*level;
            if l.tuples_inserted + l.tuples_updated + l.tuples_deleted > 0 || l.truncdropped {
                return true;
            }
            level = l.upper;
        }
        false
    }
}

/// (Not known on this PostgreSQL version: assume not.)
#[cfg(not(any(feature = "pg15", feature = "pg16")))]
pub fn written_in_this_transaction(_relid: pg_sys::Oid) -> bool {
    false
}

/// Set search_path for the current GUC nest level; returns the level, to be
/// closed with `pg_sys::AtEOXact_GUC(true, level)` (an error unwinds it too).
///
/// # Safety
/// The caller must close the returned level on the same backend.
pub unsafe fn push_search_path(path: &std::ffi::CStr) -> i32 {
    push_setting(c"search_path", path)
}

/// Set a setting (one a user may set) for a new GUC nest level; returns the
/// level, to be closed as `push_search_path`'s.
///
/// # Safety
/// As `push_search_path`.
pub unsafe fn push_setting(name: &std::ffi::CStr, value: &std::ffi::CStr) -> i32 {
    let nest = pg_sys::NewGUCNestLevel();
    pg_sys::set_config_option(
        name.as_ptr(),
        value.as_ptr(),
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
    nest
}

/// Run `f` as role `user` in a security-restricted operation, with
/// search_path set to `search_path` when given; the caller's identity (and
/// search_path) come back afterwards, also when `f` raises an error. These
/// are the calls PostgreSQL makes around its own such operations (e.g.
/// REFRESH MATERIALIZED VIEW).
pub fn as_user<R>(user: pg_sys::Oid, search_path: Option<&std::ffi::CStr>, f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32, Option<i32>);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores what was saved below, on the backend thread.
            unsafe {
                if let Some(nest) = self.2 {
                    pg_sys::AtEOXact_GUC(true, nest);
                }
                pg_sys::SetUserIdAndSecContext(self.0, self.1);
            }
        }
    }
    let mut saved_user = pg_sys::InvalidOid;
    let mut context = 0;
    // SAFETY: reads and sets the backend's current user id; the GUC level
    // opened here is closed by Restore.
    let _restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            user,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        Restore(saved_user, context, search_path.map(|p| push_search_path(p)))
    };
    f()
}

/// Run `f` with setting `name` at `value`, restored afterwards (also when
/// `f` raises an error).
pub fn with_setting<R>(name: &std::ffi::CStr, value: &std::ffi::CStr, f: impl FnOnce() -> R) -> R {
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: closes the level opened below, on the backend thread.
            unsafe { pg_sys::AtEOXact_GUC(true, self.0) };
        }
    }
    // SAFETY: the level opened here is closed by Restore.
    let _restore = Restore(unsafe { push_setting(name, value) });
    f()
}

// ---------------------------------------------------------------------------
// Statements run through SPI, under one snapshot during a deferred refresh.

thread_local! {
    /// The snapshot every maintenance statement runs with while a deferred
    /// refresh is under way (null otherwise: each statement takes its own,
    /// as SPI does).
    static REFRESH_SNAPSHOT: std::cell::Cell<pg_sys::Snapshot> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// Run `f` with every statement of `execute` and `execute_sql` reading
/// `snapshot` (plus the transaction's own later writes), whatever the
/// isolation level: a deferred refresh reads its batch of logged changes and
/// the base tables in one snapshot, so that the tables hold exactly the state
/// after that batch.
///
/// # Safety
/// `snapshot` must stay registered until `f` returns.
pub unsafe fn with_snapshot<R>(snapshot: pg_sys::Snapshot, f: impl FnOnce() -> R) -> R {
    struct Reset(pg_sys::Snapshot);
    impl Drop for Reset {
        fn drop(&mut self) {
            REFRESH_SNAPSHOT.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(REFRESH_SNAPSHOT.with(|s| s.replace(snapshot)));
    f()
}

/// The message of a caught error.
pub fn error_message(e: pg_sys::panic::CaughtError) -> String {
    match e {
        pg_sys::panic::CaughtError::PostgresError(r) | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
        pg_sys::panic::CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
    }
}

/// Run `f` in a subtransaction: an error in it rolls back what it did and
/// is returned as its message, and the transaction goes on.
pub fn in_subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    // SAFETY: as PL/pgSQL's exception blocks do, on the backend's main
    // thread inside a transaction: the subtransaction is begun, then
    // released or rolled back, and the caller's memory context and resource
    // owner are restored after either.
    unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cxt);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(f()))).catch_others(|e| Err(error_message(e))).execute();
        pg_sys::MemoryContextSwitchTo(cxt);
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(cxt);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}

/// Run `f` with a new snapshot of the transaction, registered and set for
/// every statement as `with_snapshot` does, unregistered after (an error
/// releases it with the resource owner).
pub fn with_new_snapshot<R>(f: impl FnOnce(pg_sys::Snapshot) -> R) -> R {
    // SAFETY: the snapshot is registered for the length of its use.
    unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let r = with_snapshot(snapshot, || f(snapshot));
        pg_sys::UnregisterSnapshot(snapshot);
        r
    }
}

/// A statement prepared once and kept for the backend (SPI_keepplan), run
/// with `execute` inside an SPI connection.
pub struct Plan(std::ptr::NonNull<pg_sys::_SPI_plan>);

impl Plan {
    /// Prepare `sql` with parameters of types `args`; must run inside an SPI connection.
    pub fn prepare(sql: &str, args: &[pg_sys::Oid]) -> Plan {
        let text = std::ffi::CString::new(sql).expect("no NUL in generated SQL");
        let mut types = args.to_vec();
        // SAFETY: SPI_prepare copies the text and types; the plan is kept
        // (moved out of the SPI procedure context) before it is returned.
        unsafe {
            let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr());
            let Some(plan) = std::ptr::NonNull::new(plan) else {
                raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not prepare: {sql}"), None, None)
            };
            pg_sys::SPI_keepplan(plan.as_ptr());
            Plan(plan)
        }
    }

    /// Run the statement with `args` (no NULLs) and return the rows it
    /// processed; `first_row` reads its first row afterwards.
    pub fn execute(&self, args: &[pg_sys::Datum]) -> u64 {
        let mut values = args.to_vec();
        let nulls = vec![b' ' as std::ffi::c_char; args.len()];
        // SAFETY: the plan is valid until dropped; values match its
        // parameter count (the callers pass what they prepared); the snapshot,
        // when set, is registered by `with_snapshot`'s caller.
        let rc = unsafe {
            let snapshot = REFRESH_SNAPSHOT.with(|s| s.get());
            if snapshot.is_null() {
                pg_sys::SPI_execute_plan(self.0.as_ptr(), values.as_mut_ptr(), nulls.as_ptr(), false, 0)
            } else {
                pg_sys::SPI_execute_snapshot(
                    self.0.as_ptr(),
                    values.as_mut_ptr(),
                    nulls.as_ptr(),
                    snapshot,
                    std::ptr::null_mut(),
                    false,
                    true,
                    0,
                )
            }
        };
        if rc < 0 {
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("SPI failed with code {rc}"), None, None);
        }
        // SAFETY: set by the SPI call above.
        unsafe { pg_sys::SPI_processed }
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: kept by `prepare`, freed once here.
        unsafe { pg_sys::SPI_freeplan(self.0.as_ptr()) };
    }
}

/// Run `sql` once, in an SPI connection of its own (prepared, run with the
/// refresh snapshot if one is set, freed); returns the rows it processed.
pub fn execute_sql(sql: &str) -> u64 {
    Spi::connect_mut(|_client| Plan::prepare(sql, &[]).execute(&[]))
}

/// Run the query `sql` once like `execute_sql` (so with a snapshot of its
/// own, or the refresh's: never the calling statement's, as a read-only SPI
/// query would) and return the first `n` columns of its first row as int8.
pub fn query_int8s(sql: &str, n: usize) -> Vec<Option<i64>> {
    Spi::connect_mut(|_client| {
        Plan::prepare(sql, &[]).execute(&[]);
        first_row_int8s(n)
    })
}

/// Like `query_int8s`, the first `n` columns of the first row as text.
pub fn query_texts(sql: &str, n: usize) -> Vec<Option<String>> {
    Spi::connect_mut(|_client| {
        Plan::prepare(sql, &[]).execute(&[]);
        // SAFETY: SPI_getvalue returns a palloc'd string or NULL for a NULL value.
        first_row(n, |tuple, desc, col| unsafe {
            let p = pg_sys::SPI_getvalue(tuple, desc, col);
            (!p.is_null()).then(|| cstr(p))
        })
    })
}

/// The first `n` columns of the first row the last statement returned, as
/// int8 (NULL, or no row, as None).
pub fn first_row_int8s(n: usize) -> Vec<Option<i64>> {
    // SAFETY: SPI_getbinval reads a column of the tuple it is given.
    first_row(n, |tuple, desc, col| unsafe {
        let mut isnull = false;
        let d = pg_sys::SPI_getbinval(tuple, desc, col, &mut isnull);
        i64::from_datum(d, isnull)
    })
}

/// Columns 1..=n of the first row of the last SPI statement's result, each
/// read by `column` (all None when there is no row).
fn first_row<T: Clone>(n: usize, column: impl Fn(pg_sys::HeapTuple, pg_sys::TupleDesc, i32) -> Option<T>) -> Vec<Option<T>> {
    // SAFETY: reads the result of the last SPI call of this connection.
    unsafe {
        let table = pg_sys::SPI_tuptable;
        if table.is_null() || pg_sys::SPI_processed == 0 {
            return vec![None; n];
        }
        let tuple = *(*table).vals;
        (1..=n as i32).map(|col| column(tuple, (*table).tupdesc, col)).collect()
    }
}

/// Record that relation `depender` depends on relation `referenced`: the
/// view's table on its query's view (NORMAL: dropping a base table with
/// CASCADE drops the pg_tide view too), the state on the view's table (AUTO:
/// dropped with it), an internal view's table on the view's table (INTERNAL:
/// dropped with it, and not on its own), a change log on its table (AUTO).
///
/// # Safety
/// Both relations must exist.
pub unsafe fn record_relation_dependency(depender: pg_sys::Oid, referenced: pg_sys::Oid, kind: pg_sys::DependencyType::Type) {
    let depender = pg_sys::ObjectAddress { classId: pg_sys::RelationRelationId, objectId: depender, objectSubId: 0 };
    let referenced = pg_sys::ObjectAddress { classId: pg_sys::RelationRelationId, objectId: referenced, objectSubId: 0 };
    pg_sys::recordDependencyOn(&depender, &referenced, kind);
    pg_sys::CommandCounterIncrement();
}

// ---------------------------------------------------------------------------
// Filling a table from a query, counting its rows as build progress.

/// Insert the rows of the query `select` into table `relid`, as `{insert}
/// {select}` would (`insert`: `INSERT INTO t` or `INSERT INTO t (cols)`);
/// returns the rows inserted. Each row counts toward the build under way
/// (`progress`), whose estimate grows by the planner's.
///
/// A table created in this transaction, with no index, constraint, policy
/// or generated column yet, and whose columns are the query's (same names,
/// types and typmods, in order), is filled the way CREATE MATERIALIZED VIEW
/// fills its table: the query is planned as a SELECT, which PostgreSQL may
/// run in parallel (INSERT ... SELECT never is, before PostgreSQL 18), and
/// each row is stored directly. Such a table has no trigger but pg_tide's
/// own guard and nothing reads it yet, so nothing is skipped. Anything else
/// takes the plain INSERT (with RETURNING, only to count its rows).
pub fn fill_table(relid: pg_sys::Oid, insert: &str, select: &str) -> u64 {
    let snapshot = REFRESH_SNAPSHOT.with(|s| s.get());
    Spi::connect_mut(|_client| {
        // SAFETY: plans are prepared, run and freed in this SPI connection;
        // the relation is opened (and locked) for the whole fill and closed
        // after it, also on error (the resource owner closes it then).
        unsafe {
            if snapshot.is_null() {
                let plan = prepare_unsaved(select, pg_sys::CURSOR_OPT_PARALLEL_OK as i32);
                let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as i32);
                let sources = list::<pg_sys::CachedPlanSource>(pg_sys::SPI_plan_get_plan_sources(plan));
                let result = match sources.as_slice() {
                    [source] => (**source).resultDesc,
                    _ => std::ptr::null_mut(),
                };
                if let Some(not_null) = bulk_fillable(rel, result) {
                    let mut receiver = FillReceiver {
                        base: receiver(fill_receive, fill_startup, fill_shutdown),
                        rel,
                        not_null,
                        cid: 0,
                        bistate: std::ptr::null_mut(),
                        rows: 0,
                    };
                    // A parallel operation cannot take a transaction id: take it now.
                    pg_sys::GetCurrentTransactionId();
                    run_plan(plan, select, &mut receiver.base, snapshot);
                    pg_sys::SPI_freeplan(plan);
                    pg_sys::table_close(rel, pg_sys::RowExclusiveLock as i32);
                    return receiver.rows;
                }
                pg_sys::SPI_freeplan(plan);
                pg_sys::table_close(rel, pg_sys::RowExclusiveLock as i32);
            }
            let sql = format!("{insert} {select} RETURNING true");
            let plan = prepare_unsaved(&sql, 0);
            let mut receiver = CountReceiver { base: receiver(count_receive, count_startup, count_shutdown), rows: 0 };
            run_plan(plan, &sql, &mut receiver.base, snapshot);
            pg_sys::SPI_freeplan(plan);
            receiver.rows
        }
    })
}

/// Prepare `sql` in the current SPI connection, not kept beyond it.
///
/// # Safety
/// Inside an SPI connection.
unsafe fn prepare_unsaved(sql: &str, cursor_options: i32) -> pg_sys::SPIPlanPtr {
    let text = std::ffi::CString::new(sql).expect("no NUL in generated SQL");
    let plan = pg_sys::SPI_prepare_cursor(text.as_ptr(), 0, std::ptr::null_mut(), cursor_options);
    if plan.is_null() {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not prepare: {sql}"), None, None);
    }
    plan
}

/// Run the one-statement, parameterless `plan` (whose text is `sql`), its
/// rows sent to `dest`, after telling `progress` what the planner expects.
/// With `snapshot` null it runs as SPI runs a statement (a new snapshot);
/// otherwise it reads `snapshot` (with this transaction's later writes), as
/// SPI_execute_snapshot would, which cannot send rows to a receiver of ours.
/// Triggers fire as for any statement. Later statements see the rows.
///
/// # Safety
/// Inside an SPI connection; `plan` from it; `dest` valid while this runs;
/// `snapshot` null or registered.
unsafe fn run_plan(plan: pg_sys::SPIPlanPtr, sql: &str, dest: *mut pg_sys::DestReceiver, snapshot: pg_sys::Snapshot) {
    let cached = pg_sys::SPI_plan_get_cached_plan(plan);
    if cached.is_null() {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not plan: {sql}"), None, None);
    }
    let statements = list::<pg_sys::PlannedStmt>((*cached).stmt_list);
    let [statement] = statements.as_slice() else {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("expected one statement: {sql}"), None, None)
    };
    let statement = *statement;
    crate::progress::statement((*(*statement).planTree).plan_rows.max(0.0) as u64);
    if snapshot.is_null() {
        // (The plan is cached in its source: SPI runs the one just looked at.)
        pg_sys::ReleaseCachedPlan(cached, std::ptr::null_mut());
        let options = pg_sys::SPIExecuteOptions { dest, ..Default::default() };
        let rc = pg_sys::SPI_execute_plan_extended(plan, &options);
        if rc < 0 {
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("SPI failed with code {rc}"), None, None);
        }
    } else {
        pg_sys::PushCopiedSnapshot(snapshot);
        pg_sys::CommandCounterIncrement();
        pg_sys::UpdateActiveSnapshotCommandId();
        let text = std::ffi::CString::new(sql).expect("no NUL in generated SQL");
        let query = pg_sys::CreateQueryDesc(
            statement,
            text.as_ptr(),
            pg_sys::GetActiveSnapshot(),
            std::ptr::null_mut(),
            dest,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
        pg_sys::ExecutorStart(query, 0);
        pg_sys::ExecutorRun(query, pg_sys::ScanDirection::ForwardScanDirection, 0, true);
        pg_sys::ExecutorFinish(query);
        pg_sys::ExecutorEnd(query);
        pg_sys::FreeQueryDesc(query);
        pg_sys::PopActiveSnapshot();
        pg_sys::ReleaseCachedPlan(cached, std::ptr::null_mut());
    }
    pg_sys::CommandCounterIncrement();
}

/// A receiver whose callbacks are these (destroy: owned by the caller).
fn receiver(
    receive: unsafe extern "C-unwind" fn(*mut pg_sys::TupleTableSlot, *mut pg_sys::DestReceiver) -> bool,
    startup: unsafe extern "C-unwind" fn(*mut pg_sys::DestReceiver, i32, pg_sys::TupleDesc),
    shutdown: unsafe extern "C-unwind" fn(*mut pg_sys::DestReceiver),
) -> pg_sys::DestReceiver {
    pg_sys::DestReceiver {
        receiveSlot: Some(receive),
        rStartup: Some(startup),
        rShutdown: Some(shutdown),
        rDestroy: Some(receiver_destroy),
        mydest: pg_sys::CommandDest::DestNone,
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn receiver_destroy(_receiver: *mut pg_sys::DestReceiver) {
    // Owned by fill_table, not by PostgreSQL.
}

/// The receiver of the plain INSERT's RETURNING rows: counts them.
#[repr(C)]
struct CountReceiver {
    base: pg_sys::DestReceiver,
    rows: u64,
}

#[pg_guard]
unsafe extern "C-unwind" fn count_startup(_receiver: *mut pg_sys::DestReceiver, _operation: i32, _desc: pg_sys::TupleDesc) {}

#[pg_guard]
unsafe extern "C-unwind" fn count_receive(_slot: *mut pg_sys::TupleTableSlot, receiver: *mut pg_sys::DestReceiver) -> bool {
    // SAFETY: `receiver` is the `base` of a CountReceiver (see fill_table).
    let r = &mut *(receiver as *mut CountReceiver);
    r.rows += 1;
    crate::progress::row();
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn count_shutdown(_receiver: *mut pg_sys::DestReceiver) {}

/// Whether `rel` can be filled directly with rows of type `result` (see
/// `fill_table`); the attribute numbers of its NOT NULL columns if so.
///
/// # Safety
/// `rel` must be open; `result` NULL or a valid tuple descriptor.
unsafe fn bulk_fillable(rel: pg_sys::Relation, result: pg_sys::TupleDesc) -> Option<Vec<usize>> {
    let r = &*rel;
    let class = &*r.rd_rel;
    let desc = &*r.rd_att;
    let constr = desc.constr.as_ref();
    let fresh = r.rd_createSubid != 0;
    let plain = class.relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char && !class.relrowsecurity && !class.relhasindex;
    let unconstrained = constr.is_none_or(|c| c.num_check == 0 && !c.has_generated_stored);
    if result.is_null() || !fresh || !plain || !unconstrained || !pg_sys::RelationGetIndexList(rel).is_null() {
        return None;
    }
    let result = &*result;
    if result.natts != desc.natts {
        return None;
    }
    let table = desc.attrs.as_slice(desc.natts as usize);
    let query = result.attrs.as_slice(result.natts as usize);
    let mut not_null = Vec::new();
    for (i, (t, q)) in table.iter().zip(query).enumerate() {
        let same = !t.attisdropped
            && t.atttypid == q.atttypid
            && (t.atttypmod == q.atttypmod || t.atttypmod == -1)
            && CStr::from_ptr(t.attname.data.as_ptr()) == CStr::from_ptr(q.attname.data.as_ptr());
        if !same {
            return None;
        }
        if t.attnotnull {
            not_null.push(i);
        }
    }
    Some(not_null)
}

/// The receiver of `fill_table`'s fast path. PostgreSQL calls it through
/// `base`, its first field.
#[repr(C)]
struct FillReceiver {
    base: pg_sys::DestReceiver,
    rel: pg_sys::Relation,
    /// 0-based positions of the table's NOT NULL columns.
    not_null: Vec<usize>,
    cid: pg_sys::CommandId,
    bistate: pg_sys::BulkInsertState,
    rows: u64,
}

#[pg_guard]
unsafe extern "C-unwind" fn fill_startup(receiver: *mut pg_sys::DestReceiver, _operation: i32, _desc: pg_sys::TupleDesc) {
    // SAFETY: `receiver` is the `base` of a FillReceiver (see fill_table).
    let r = &mut *(receiver as *mut FillReceiver);
    r.cid = pg_sys::GetCurrentCommandId(true);
    r.bistate = pg_sys::GetBulkInsertState();
}

#[pg_guard]
unsafe extern "C-unwind" fn fill_receive(slot: *mut pg_sys::TupleTableSlot, receiver: *mut pg_sys::DestReceiver) -> bool {
    // SAFETY: as in fill_startup; `slot` holds a row of the query, whose
    // columns bulk_fillable matched with the table's.
    let r = &mut *(receiver as *mut FillReceiver);
    if !r.not_null.is_empty() {
        pg_sys::slot_getallattrs(slot);
        for &i in &r.not_null {
            if *(*slot).tts_isnull.add(i) {
                let rel = &*r.rel;
                let column = cstr((*rel.rd_att).attrs.as_slice(i + 1)[i].attname.data.as_ptr());
                raise(
                    PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                    format!("null value in column \"{column}\" of relation \"{}\"", cstr((*rel.rd_rel).relname.data.as_ptr())),
                    None,
                    None,
                );
            }
        }
    }
    let insert = (*(*r.rel).rd_tableam).tuple_insert.expect("a table access method inserts");
    insert(r.rel, slot, r.cid, 0, r.bistate);
    r.rows += 1;
    crate::progress::row();
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn fill_shutdown(receiver: *mut pg_sys::DestReceiver) {
    // SAFETY: as in fill_startup.
    let r = &mut *(receiver as *mut FillReceiver);
    if !r.bistate.is_null() {
        pg_sys::FreeBulkInsertState(r.bistate);
        r.bistate = std::ptr::null_mut();
    }
    if let Some(finish) = (*(*r.rel).rd_tableam).finish_bulk_insert {
        finish(r.rel, 0);
    }
}

/// The OID of a relation named `qualified` (schema-qualified and quoted as
/// needed); it must exist.
pub fn relid_of(qualified: &str) -> pg_sys::Oid {
    Spi::get_one_with_args::<pg_sys::Oid>("SELECT $1::regclass::oid", &[qualified.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| raise(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, format!("relation {qualified} does not exist"), None, None))
}

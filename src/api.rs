//! The SQL functions of schema `tide`. Each validates its arguments, then
//! hands off to `analyze`, `catalog` and `apply`.

use crate::analyze;
use crate::apply;
use crate::catalog;
use crate::compare;
use crate::delta;
use crate::explain;
use crate::pg::{self, raise};
use crate::sql::{self, ident, Compare, VerifyColumn};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::time::Instant;

/// A required text argument: not NULL, not blank.
fn required<'a>(value: Option<&'a str>, what: &str) -> &'a str {
    match value {
        None => raise(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{what} must not be NULL"), None, None),
        Some(v) if v.trim().is_empty() => {
            raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{what} must not be empty"), None, None)
        }
        Some(v) => v,
    }
}

/// Split a view name written as a SQL identifier, possibly schema-qualified,
/// into (schema, name); the schema defaults to the creation schema of search_path.
/// A view name with its column names, as pg_ivm's create_immv takes them:
/// `name (a, b)` names the query's first columns a and b. Without a list, no names.
fn split_column_names(name: &str) -> (&str, Vec<String>) {
    let trimmed = name.trim_end();
    if !trimmed.ends_with(')') {
        return (name, Vec::new());
    }
    // The list's opening parenthesis: the first one outside double quotes.
    let mut quoted = false;
    let open = trimmed.char_indices().find(|&(_, c)| {
        if c == '"' {
            quoted = !quoted;
        }
        c == '(' && !quoted
    });
    let Some((open, _)) = open else { return (name, Vec::new()) };
    let list = &trimmed[open + 1..trimmed.len() - 1];
    // Each name an identifier (parse_ident: quoted or folded to lower case).
    let columns: Vec<String> = Spi::get_one_with_args::<Vec<String>>(
        "SELECT array_agg((pg_catalog.parse_ident(pg_catalog.btrim(c)))[1] ORDER BY n) \
           FROM pg_catalog.regexp_split_to_table($1, ',(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)') WITH ORDINALITY AS s(c, n)",
        &[list.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    (trimmed[..open].trim_end(), columns)
}

fn split_view_name(name: &str) -> (String, String) {
    let parts: Vec<String> =
        Spi::get_one_with_args::<Vec<String>>("SELECT pg_catalog.parse_ident($1)", &[name.into()]).ok().flatten().unwrap_or_default();
    match parts.as_slice() {
        [rel] => {
            let schema = Spi::get_one::<String>("SELECT pg_catalog.current_schema()::text").ok().flatten().unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
                    "no schema has been selected to create in",
                    None,
                    Some("Qualify the view name with a schema, or set search_path."),
                )
            });
            (schema, rel.clone())
        }
        [schema, rel] => (schema.clone(), rel.clone()),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("improper view name \"{name}\": too many dotted names"),
            None,
            Some("Write the name as name or schema.name."),
        ),
    }
}

/// The view's columns in order, with whether each can be compared by equality.
fn view_columns(relid: pg_sys::Oid) -> Vec<VerifyColumn> {
    pg::columns(relid)
        .into_iter()
        .map(|(name, typid)| {
            let compare = if typid == pg_sys::FLOAT4OID || typid == pg_sys::FLOAT8OID {
                Compare::Float
            } else if pg::has_equality(typid) {
                Compare::Equal
            } else {
                Compare::Text
            };
            VerifyColumn { name, compare }
        })
        .collect()
}

fn run(stmt: &str) {
    Spi::run(stmt).unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("{e}"), None, None));
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Create the view `name` over `query`, build it in full, register it, and
/// return its number of rows.
#[pg_extern(volatile, parallel_unsafe)]
fn create_view(
    name: Option<&str>,
    query: Option<&str>,
    mode: default!(Option<&str>, "'immediate'"),
    refresh_interval: default!(Option<pgrx::datum::Interval>, "'1 second'"),
    capture: default!(Option<&str>, "'auto'"),
) -> Option<i64> {
    let name = required(name, "view name");
    let query = required(query, "query");
    let mode = checked_mode(required(mode, "mode"));
    let capture = checked_capture(required(capture, "capture"));
    // (An immediate view captures with its statement triggers.)
    let capture = if mode == "immediate" { "trigger" } else { capture };
    let interval = refresh_interval
        .unwrap_or_else(|| raise(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "refresh_interval must not be NULL", None, None));
    check_interval(interval);
    if mode == "deferred" {
        crate::scheduler::require_preloaded();
    }
    if pg::uses_transaction_snapshot() {
        // The build must see every write committed before capture starts,
        // which a transaction snapshot taken earlier may not.
        raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "tide.create_view cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
            None,
            Some("Create the view in a READ COMMITTED transaction."),
        );
    }
    let capture = if capture == "wal"
        && reads_a_tree(&analyze::analyze(query).tree.base_relations().into_iter().map(pg_sys::Oid::from).collect::<Vec<_>>())
    {
        notice!("WAL capture does not follow partition and inheritance trees: the view uses trigger capture");
        "trigger"
    } else {
        capture
    };
    let (name, columns) = split_column_names(name);
    let (schema, rel) = split_view_name(name);
    let built = crate::progress::building(0, name, || build(&Target::User { schema, rel, columns }, query, mode, capture));
    catalog::as_superuser(|| {
        Spi::run_with_args(
            "UPDATE tide.catalog SET refresh_interval = $2, capture = $3 WHERE id = $1",
            &[built.id.into(), interval.into(), capture.into()],
        )
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not register the view: {e}"), None, None));
    if mode == "deferred" {
        // Built in the background, from a snapshot taken after this commits.
        crate::scheduler::note_views_changed();
    }
    built.rows
}

/// 'immediate' or 'deferred'; anything else is refused.
fn checked_mode(mode: &str) -> &'static str {
    match mode {
        "immediate" => "immediate",
        "deferred" => "deferred",
        other => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown mode \"{other}\""),
            None,
            Some("The mode is 'immediate' or 'deferred'."),
        ),
    }
}

/// Whether `query` reads a table with partitions or inheritance children
/// (its triggers are put on every table under it; pgoutput's changes of
/// those tables would not be mapped to it).
fn reads_a_tree(tables: &[pg_sys::Oid]) -> bool {
    tables.iter().any(|t| pg::has_children(*t))
}

/// The capture a deferred view gets: 'wal' where wal_level = logical (for
/// 'wal' and 'auto'), else 'trigger' (for 'wal' with a NOTICE).
fn checked_capture(capture: &str) -> &'static str {
    match capture {
        "trigger" => "trigger",
        "auto" if crate::capture::wal::available() => "wal",
        "auto" => "trigger",
        "wal" if crate::capture::wal::available() => "wal",
        "wal" => {
            notice!("capture => 'wal' needs wal_level = logical: the view uses trigger capture");
            "trigger"
        }
        other => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown capture \"{other}\""),
            None,
            Some("The capture is 'trigger', 'wal' or 'auto'."),
        ),
    }
}

fn check_interval(interval: pgrx::datum::Interval) {
    let positive = Spi::get_one_with_args::<bool>("SELECT $1 > interval '0'", &[interval.into()]).ok().flatten().unwrap_or(false);
    if !positive {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "refresh_interval must be positive",
            None,
            Some("For example interval '1 second'."),
        );
    }
}

/// Where `build` puts the view's table.
enum Target {
    /// The table the user named, and names for its first columns.
    User { schema: String, rel: String, columns: Vec<String> },
    /// `tide_state."subquery_<id>"`: the internal view of a sub-query of
    /// another view's query, which that view reads as a table.
    Internal,
}

/// What `build` made.
struct Built {
    id: i64,
    view: pg_sys::Oid,
    /// None for a deferred view: built in the background.
    rows: Option<i64>,
}

/// Analyze `query`, make the view and everything it needs, build it in full
/// and register it. Sub-queries in FROM that the join block cannot absorb
/// are built first, each as an internal view of its own, and the view's
/// query then reads their tables.
fn build(target: &Target, query: &str, mode: &str, capture: &str) -> Built {
    let analyzed = match target {
        Target::User { columns, .. } => analyze::analyze_named(query, columns),
        Target::Internal => analyze::analyze(query),
    };
    if matches!(target, Target::User { .. }) {
        for n in &analyzed.notices {
            notice!("{n}");
        }
    }
    if let Some((operator, reason)) = delta::first_unmaintained(&analyzed.tree) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("the view's query cannot be maintained incrementally: {reason}"),
            Some(format!("The {operator} operator is not maintained by this version of pg_tide.")),
            Some("tide.explain(query) shows how each operator of the query is maintained."),
        );
    }
    let children: Vec<Built> = analyzed.internal_views.iter().map(|sql| build(&Target::Internal, sql, mode, capture)).collect();

    // The query, as a PostgreSQL view in tide_state: PostgreSQL then records
    // what the view depends on (tables, columns, functions, types), refuses
    // to drop or retype them from under it, follows renames, and gives
    // tide.verify and full rebuilds the query to run.
    let id = catalog::next_id();
    for child in &children {
        catalog::set_parent(child.id, id);
    }
    let definition = sql::definition_name(id);
    let owner = Spi::get_one::<String>("SELECT current_user::text").ok().flatten().unwrap_or_default();
    catalog::as_superuser(|| {
        run(&format!("CREATE VIEW {definition} AS {}", analyzed.canonical_sql));
        run(&format!("ALTER VIEW {definition} OWNER TO {}", ident(&owner)));
    });
    let definition_oid = pg::relid_of(&definition);

    // The view itself: a table with exactly the query's columns, owned by the caller.
    let make_table = |view: &str| {
        run(&format!("CREATE TABLE {view} (LIKE {definition})"));
        run(&format!(
            "CREATE TRIGGER tide_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {view} \
             FOR EACH STATEMENT EXECUTE FUNCTION tide.guard_view_write()"
        ));
    };
    let view = match target {
        Target::User { schema, rel, .. } => {
            let view = format!("{}.{}", ident(schema), ident(rel));
            make_table(&view);
            view
        }
        Target::Internal => {
            let view = format!("tide_state.{}", ident(&format!("subquery_{id}")));
            catalog::as_superuser(|| {
                make_table(&view);
                run(&format!("ALTER TABLE {view} OWNER TO {}", ident(&owner)));
            });
            view
        }
    };
    let view_oid = pg::relid_of(&view);
    // SAFETY: the relations exist (created above in this transaction).
    unsafe {
        pg::record_relation_dependency(view_oid, definition_oid, pg_sys::DependencyType::DEPENDENCY_NORMAL);
        // An internal view is part of this one: dropped with it, and not on its own.
        for child in &children {
            pg::record_relation_dependency(child.view, view_oid, pg_sys::DependencyType::DEPENDENCY_INTERNAL);
        }
    }

    let start = Instant::now();
    let view_ref = apply::ViewRef { id, view: view_oid, definition: definition_oid, owner: current_user_oid() };
    let compiled = apply::compiled(&view_ref);
    let base_tables: Vec<pg_sys::Oid> = compiled.plan.base_tables().into_iter().map(pg_sys::Oid::from).collect();
    // No write to a base table may fall between the build and the capture:
    // wait for writers in flight, and hold new ones until this commits.
    for t in &base_tables {
        run(&format!("LOCK TABLE {} IN SHARE MODE", pg::qualified_relation_name(*t)));
    }

    // Grouped views keep per-group state beside the view: its table is made
    // (without data) by pg_tide, then owned and filled by the view's owner,
    // whose rights the backfill runs with.
    if let Some(g) = compiled.grouped() {
        catalog::as_superuser(|| {
            run(&format!("CREATE TABLE {} AS {} WITH NO DATA", g.state, g.backfill_query()));
            run(&g.state_columns_ddl());
            run(&format!("ALTER TABLE {} OWNER TO {}", g.state, ident(&owner)));
            for (table, query) in g.distinct_tables() {
                run(&format!("CREATE TABLE {table} AS {query} WITH NO DATA"));
                run(&format!("ALTER TABLE {table} OWNER TO {}", ident(&owner)));
            }
        });
        // SAFETY: the relations exist (created above in this transaction).
        unsafe {
            pg::record_relation_dependency(pg::relid_of(g.state), view_oid, pg_sys::DependencyType::DEPENDENCY_AUTO);
            for (table, _) in g.distinct_tables() {
                pg::record_relation_dependency(pg::relid_of(&table), view_oid, pg_sys::DependencyType::DEPENDENCY_AUTO);
            }
        }
    }
    // The backfill: the state, then the rows, with the owner's rights.
    // (A deferred view is built by the refresher, from a snapshot taken after
    // this transaction commits, so that writers do not wait for the build.)
    let rows = (mode == "immediate").then(|| apply::rebuild_view(&view_ref));
    // Indexes once the tables are filled (a deferred view is filled later).
    if let Some(g) = compiled.grouped() {
        catalog::as_superuser(|| {
            for ddl in g.state_index_ddl() {
                run(&ddl);
            }
            for (table, _) in g.distinct_tables() {
                for ddl in g.distinct_ddl(&table) {
                    run(&ddl);
                }
            }
        });
    }
    if mode == "deferred" {
        // The owner must be able to run the query (the build will, as the
        // owner): fail here, not in the background. LIMIT 0 still checks rights.
        run(&format!("SELECT FROM {definition} LIMIT 0"));
    }
    // The indexes maintenance finds the view's rows by.
    let indexes: Vec<String> = compiled
        .grouped()
        .and_then(|g| g.view_key_index())
        .or_else(|| compiled.bag().and_then(|b| b.view_index()))
        .or_else(|| compiled.window().and_then(|w| w.view_index()))
        .into_iter()
        .chain(compiled.recompute_indexes())
        .collect();
    if let crate::delta::plan::Shape::TopK { index: Some(index), .. } = &compiled.plan.shape {
        // On the internal view the rows are read from.
        catalog::as_superuser(|| run(index));
    }
    for index in indexes {
        match target {
            Target::User { .. } => run(&index),
            Target::Internal => catalog::as_superuser(|| run(&index)),
        }
    }
    catalog::insert(id, view_oid, definition_oid, query, mode, rows, elapsed_ms(start), &base_tables);
    // The tables of the view's own internal views always get the immediate
    // capture triggers: a deferred refresh maintains the view from the
    // writes it makes to them. Other tables of a deferred view get a change log.
    let internal: Vec<pg_sys::Oid> = children.iter().map(|c| c.view).collect();
    catalog::as_superuser(|| {
        for t in &base_tables {
            if mode == "deferred" && !internal.contains(t) {
                if capture == "wal" {
                    crate::capture::wal::ensure_capture(*t);
                } else {
                    crate::capture::log::ensure_log(*t);
                }
            } else {
                Spi::run_with_args("SELECT tide.install_capture($1::regclass)", &[(*t).into()]).unwrap_or_else(|e| {
                    raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not install capture: {e}"), None, None)
                });
            }
            // Other backends re-read which views a table has.
            // SAFETY: queues a relcache invalidation, sent at commit.
            unsafe { pg_sys::CacheInvalidateRelcacheByRelid(*t) };
        }
    });
    Built { id, view: view_oid, rows }
}

fn current_user_oid() -> pg_sys::Oid {
    // SAFETY: reads the backend's current user id.
    unsafe { pg_sys::GetUserId() }
}

/// Bring the view up to date and return its number of rows.
#[pg_extern(volatile, parallel_unsafe)]
fn refresh(name: Option<&str>, full: default!(Option<bool>, false)) -> i64 {
    let name = required(name, "view name");
    let entry = catalog::resolve(name);
    catalog::check_owner(&entry, "refresh");
    let view = pg::qualified_relation_name(entry.view);
    if catalog::mode(entry.id) == "deferred" {
        crate::refresh::refresh_deferred(&entry, full.unwrap_or(false));
        // The refresher reads the catalog again (the view may have been failed).
        crate::scheduler::note_views_changed();
        // The refresh keeps the catalog's row count.
        let rows = pg::query_int8s(&format!("SELECT row_count FROM tide.catalog WHERE id = {}", entry.id), 1)[0];
        if let Some(rows) = rows {
            return rows;
        }
        return Spi::get_one::<i64>(&format!("SELECT count(*) FROM {view}")).ok().flatten().unwrap_or(0);
    }
    if !full.unwrap_or(false) {
        // An immediate view is current after every statement.
        return Spi::get_one::<i64>(&format!("SELECT count(*) FROM {view}")).ok().flatten().unwrap_or(0);
    }
    // One refresh at a time per view, and no writer maintaining it meanwhile;
    // readers are not blocked. Under READ COMMITTED the statements below run
    // with a snapshot taken after the lock.
    run(&format!("LOCK TABLE {view} IN EXCLUSIVE MODE"));
    let start = Instant::now();
    let rows = crate::progress::building(entry.id, &view, || {
        rebuild_subqueries(&entry);
        apply::rebuild_view(&entry)
    });
    catalog::record_refresh(entry.id, rows, elapsed_ms(start));
    rows
}

/// Change a view's mode, refresh interval or capture, without rebuilding it.
#[pg_extern(volatile, parallel_unsafe)]
fn alter_view(
    name: Option<&str>,
    mode: default!(Option<&str>, "NULL"),
    refresh_interval: default!(Option<pgrx::datum::Interval>, "NULL"),
    capture: default!(Option<&str>, "NULL"),
) {
    let name = required(name, "view name");
    let entry = catalog::resolve(name);
    catalog::check_owner(&entry, "alter");
    if catalog::is_internal(entry.id) {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{} is an internal view of another pg_tide view", pg::qualified_relation_name(entry.view)),
            None,
            Some("Alter the view that contains it."),
        );
    }
    let members = crate::refresh::family(&entry);
    let asked = mode.map(checked_mode);
    let switching = asked.is_some_and(|m| m != catalog::mode(entry.id));
    if switching {
        // Writers are held off first (as create_view orders its locks, and
        // as immediate-mode writers take the view's lock after their table's).
        lock_base_tables_for_switch(&members);
    }
    // A refresh under way finishes first, and none starts until this
    // commits: each sees the view's settings before or after, never a mix.
    run(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", pg::qualified_relation_name(entry.view)));
    // Another alter_view may have committed while this one waited: the
    // mode is read again under the lock (a switch it made already is not
    // made twice).
    let mode = asked.filter(|m| *m != catalog::mode(entry.id));
    if mode.is_some() && !switching {
        raise(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!("the mode of {} was changed by a concurrent tide.alter_view", pg::qualified_relation_name(entry.view)),
            None,
            Some("Retry the call."),
        );
    }
    let ids = members.iter().map(|m| m.id.to_string()).collect::<Vec<_>>().join(", ");
    let set = |assignment: &str, value: pgrx::datum::DatumWithOid<'_>| {
        catalog::as_superuser(|| Spi::run_with_args(&format!("UPDATE tide.catalog SET {assignment} = $1 WHERE id IN ({ids})"), &[value]))
            .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not alter the view: {e}"), None, None));
    };
    if let Some(interval) = refresh_interval {
        check_interval(interval);
        set("refresh_interval", interval.into());
    }
    if let Some(capture) = capture {
        let capture = checked_capture(capture);
        let capture = if capture == "wal" && reads_a_tree(&crate::refresh::logged_tables(&members)) {
            notice!("WAL capture does not follow partition and inheritance trees: the view keeps trigger capture");
            "trigger"
        } else {
            capture
        };
        if catalog::mode(entry.id) == "deferred" && capture != catalog::capture(entry.id) {
            // The new capture starts when this commits; what the old one had
            // not delivered by then is covered by a rebuild in the background.
            let tables = crate::refresh::logged_tables(&members);
            catalog::as_superuser(|| {
                let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
                for t in &tables {
                    if capture == "wal" {
                        crate::capture::wal::ensure_capture(*t);
                    } else {
                        crate::capture::log::ensure_log(*t);
                    }
                    // The old capture goes where no other deferred view uses it.
                    let old = if capture == "wal" { "trigger" } else { "wal" };
                    let used = Spi::get_one_with_args::<bool>(
                        "SELECT EXISTS (SELECT 1 FROM tide.catalog WHERE $1::regclass = ANY (base_tables) AND mode = 'deferred' \
                            AND capture = $2 AND NOT id = ANY ($3))",
                        &[(*t).into(), old.into(), ids.clone().into()],
                    )
                    .ok()
                    .flatten()
                    .unwrap_or(true);
                    if !used && crate::capture::wal::from_wal(*t) {
                        let drop = if capture == "wal" { "tide.drop_log" } else { "tide.unpublish" };
                        run(&format!("SELECT {drop}({}::regclass)", t.to_u32()));
                    }
                    // SAFETY: queues a relcache invalidation, sent at commit.
                    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(*t) };
                }
            });
            set("status", "building".into());
        }
        set("capture", capture.into());
    }
    if let Some(mode) = mode {
        switch_mode(&entry, &members, mode);
        set("mode", mode.into());
    }
    crate::scheduler::note_views_changed();
}

/// Lock the base tables of a view changing mode against writes (SHARE, as
/// create_view takes), so that no change falls between the two captures.
fn lock_base_tables_for_switch(members: &[catalog::ViewRef]) {
    if pg::uses_transaction_snapshot() {
        raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "tide.alter_view cannot change the mode in a REPEATABLE READ or SERIALIZABLE transaction",
            None,
            Some("Change the mode in a READ COMMITTED transaction."),
        );
    }
    for t in crate::refresh::logged_tables(members) {
        run(&format!("LOCK TABLE {} IN SHARE MODE", pg::qualified_relation_name(t)));
    }
}

/// Move a view (and its internal views) to `mode`, its base tables locked
/// (`lock_base_tables_for_switch`).
fn switch_mode(entry: &catalog::ViewRef, members: &[catalog::ViewRef], mode: &str) {
    let tables = crate::refresh::logged_tables(members);
    let others = |t: pg_sys::Oid, other_mode: &str| {
        let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM tide.catalog WHERE $1::regclass = ANY (base_tables) AND mode = $2 AND NOT id = ANY ($3))",
            &[t.into(), other_mode.into(), ids.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(true)
    };
    catalog::as_superuser(|| {
        if mode == "deferred" {
            crate::scheduler::require_preloaded();
            let wal = catalog::capture(entry.id) == "wal";
            for t in &tables {
                if wal {
                    crate::capture::wal::ensure_capture(*t);
                } else {
                    crate::capture::log::ensure_log(*t);
                }
                if !others(*t, "immediate") {
                    run(&format!("SELECT tide.drop_capture({}::regclass)", t.to_u32()));
                }
            }
            if wal {
                // The slot may not hold what commits before it is made: rebuild.
                let ids = members.iter().map(|m| m.id.to_string()).collect::<Vec<_>>().join(", ");
                run(&format!("UPDATE tide.catalog SET status = 'building' WHERE id IN ({ids})"));
            } else {
                // The view is current (writers wait): it has applied what this sees.
                crate::refresh::record_applied(members, true);
            }
            // Refreshes keep the row count from here on (immediate
            // maintenance does not, to keep writers off the catalog row).
            for m in members {
                run(&format!(
                    "UPDATE tide.catalog SET row_count = (SELECT count(*) FROM {}) WHERE id = {}",
                    pg::qualified_relation_name(m.view),
                    m.id
                ));
            }
        } else {
            // Apply what is pending (writers wait), then capture as immediate.
            crate::refresh::refresh_deferred(entry, false);
            for t in &tables {
                run(&format!("SELECT tide.install_capture({}::regclass)", t.to_u32()));
                if !others(*t, "deferred") {
                    run(&format!("SELECT tide.drop_log({}::regclass)", t.to_u32()));
                }
            }
        }
        for t in &tables {
            // SAFETY: queues a relcache invalidation, sent at commit.
            unsafe { pg_sys::CacheInvalidateRelcacheByRelid(*t) };
        }
    });
}

/// Wait until the view includes every change committed before the call
/// (and, for a deferred view still being built, for its build); false on
/// timeout. An immediate view is always current.
#[pg_extern(volatile, parallel_unsafe)]
fn wait(name: Option<&str>, timeout: default!(Option<pgrx::datum::Interval>, "'30 seconds'")) -> bool {
    let name = required(name, "view name");
    let timeout = timeout.unwrap_or_else(|| raise(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "timeout must not be NULL", None, None));
    let entry = catalog::resolve(name);
    if catalog::mode(entry.id) != "deferred" {
        return true;
    }
    if pg::uses_transaction_snapshot() {
        raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "tide.wait cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
            Some("Its snapshot would never see the refresh it waits for.".into()),
            Some("Call tide.wait in a READ COMMITTED transaction, or call tide.refresh."),
        );
    }
    let timeout_ms = pg::select_one::<f64>("SELECT extract(epoch FROM $1)::float8 * 1000", &[timeout.into()]).unwrap_or(0.0);
    // The changes to wait for: those of the transactions this snapshot sees.
    // (Read-only queries: a transaction id held while waiting would make the
    // creation of WAL capture's slot wait for this call.)
    let target = pg::select_one::<String>("SELECT pg_catalog.pg_current_snapshot()::text", &[]).unwrap_or_default();
    let tables = crate::refresh::logged_tables(&crate::refresh::family(&entry));
    // Polled in statements of their own, each with a new snapshot (a
    // read-only SPI query would reuse the caller's and never see the refresh).
    let wal_capture = catalog::capture(entry.id) == "wal";
    let pending: Vec<String> = tables
        .iter()
        .filter(|_| !wal_capture)
        .map(|t| {
            format!(
                "EXISTS (SELECT 1 {} AND pg_catalog.pg_visible_in_snapshot(l.xid, s.target))",
                crate::capture::log::pending(*t, entry.id)
            )
        })
        .collect();
    let poll = format!(
        "SELECT CASE c.status WHEN 'failed' THEN 2 WHEN 'building' THEN 1 ELSE 0 END::int8, CASE WHEN {} THEN 1 ELSE 0 END::int8 \
           FROM tide.catalog c, (SELECT {}::pg_snapshot AS target) s WHERE c.id = {}",
        if pending.is_empty() { "false".to_string() } else { pending.join(" OR ") },
        pgrx::spi::quote_literal(&target),
        entry.id
    );
    // WAL-captured views are refreshed for waiters even with nothing new to
    // apply (so that their applied snapshot catches up): only for a wait on
    // such a view, or on one that reads pg_tide views (which may be).
    let counted = wal_capture || tables.iter().any(|t| catalog::lookup(*t).is_some());
    crate::scheduler::waiting(counted, || wait_for(&entry, &poll, &target, timeout_ms))
}

/// How often tide.wait says how far the build it waits for is.
const PROGRESS_NOTICE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// tide.wait's loop: poll until the view has applied what `target` sees.
fn wait_for(entry: &catalog::ViewRef, poll: &str, target: &str, timeout_ms: f64) -> bool {
    let start = Instant::now();
    let mut told = false;
    let mut told_at = Instant::now();
    let wal = catalog::capture(entry.id) == "wal";
    let target_snapshot = crate::capture::pgoutput::Snapshot::parse(target).ok();
    loop {
        // (The change logs are pg_tide's, not the view owner's to read.)
        let row = catalog::as_superuser(|| pg::query_int8s(poll, 2));
        let (status, mut behind) = (row[0].unwrap_or(0), row[1].unwrap_or(0));
        if wal {
            // No log to look into: the view has applied what the call's
            // snapshot sees when its applied snapshot sees all of it.
            let applied = pg::query_texts(&format!("SELECT applied_snapshot::text FROM tide.catalog WHERE id = {}", entry.id), 1);
            let applied = applied[0].as_deref().and_then(|a| crate::capture::pgoutput::Snapshot::parse(a).ok());
            behind = match (applied, &target_snapshot) {
                (Some(a), Some(t)) => i64::from(!a.sees_all_of(t)),
                _ => 1,
            };
        }
        if status == 2 {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("pg_tide view {} has failed", pg::qualified_relation_name(entry.view)),
                pg::select_one::<String>("SELECT last_error FROM tide.catalog WHERE id = $1", &[entry.id.into()]),
                Some("Fix the cause, then call tide.refresh on the view."),
            );
        }
        if status == 1 && !told {
            notice!("view {} is being built in the background", pg::qualified_relation_name(entry.view));
            told = true;
            told_at = Instant::now();
        }
        if status == 1 && told_at.elapsed() >= PROGRESS_NOTICE_EVERY {
            if let Some((done, estimated)) = crate::progress::of(entry.id) {
                notice!("view {}: {done} of about {estimated} rows built", pg::qualified_relation_name(entry.view));
            }
            told_at = Instant::now();
        }
        let waiting = status == 1 || behind != 0;
        if !waiting {
            return true;
        }
        if elapsed_ms(start) >= timeout_ms {
            return false;
        }
        // SAFETY: waits on this backend's latch; interrupts (cancel) are served.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                10,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
}

/// The logged changes a deferred view (catalog id `id`) has not applied yet.
#[pg_extern(stable, parallel_safe)]
fn pending_changes(id: i64) -> Option<i64> {
    let entry = catalog::by_id(id)?;
    if catalog::capture(id) == "wal" {
        return None; // counted by the slot's lag in bytes
    }
    let tables = crate::refresh::logged_tables(&crate::refresh::family(&entry));
    let mut total = 0;
    for t in tables {
        let sql = format!("SELECT count(*) {}", crate::capture::log::pending(t, id));
        total += catalog::as_superuser(|| pg::select_one::<i64>(&sql, &[])).unwrap_or(0);
    }
    Some(total)
}

/// How far the build (or full rebuild) of view `id` under way in some
/// backend is: rows written and rows the planner expects, both counting
/// every table the build fills (the state and internal views too); no row
/// when none is under way.
#[pg_extern(volatile, parallel_safe)]
fn build_progress(id: i64) -> TableIterator<'static, (name!(rows_done, i64), name!(rows_estimated, i64))> {
    TableIterator::new(crate::progress::of(id))
}

/// Seconds since the oldest change a deferred view (catalog id `id`) has
/// not applied was logged; 0 when it has applied every change. With WAL
/// capture, whose changes are timed only once decoded, an upper bound: the
/// time since its last refresh began when a transaction its applied
/// snapshot does not see has taken an id since (it may have changed the
/// view's tables), else 0; NULL while it is building.
#[pg_extern(stable, parallel_safe)]
fn lag_seconds(id: i64) -> Option<f64> {
    let entry = catalog::by_id(id)?;
    if catalog::capture(id) == "wal" {
        return pg::select_one::<f64>(
            "SELECT CASE WHEN pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric \
                             > greatest(pg_catalog.pg_snapshot_xmax(c.applied_snapshot)::text::numeric, \
                                        coalesce(c.applied_xid::text::numeric + 1, 0)) \
                          OR EXISTS (SELECT 1 FROM pg_catalog.pg_snapshot_xip(c.applied_snapshot) x \
                                      WHERE pg_catalog.pg_xact_status(x) = 'committed') \
                        THEN extract(epoch FROM pg_catalog.clock_timestamp() - c.last_refresh_at)::float8 ELSE 0 END \
               FROM tide.catalog c WHERE c.id = $1 AND c.applied_snapshot IS NOT NULL AND c.last_refresh_at IS NOT NULL",
            &[id.into()],
        );
    }
    let tables = crate::refresh::logged_tables(&crate::refresh::family(&entry));
    let mut lag: f64 = 0.0;
    for t in tables {
        let sql = format!("SELECT extract(epoch FROM clock_timestamp() - min(l.at))::float8 {}", crate::capture::log::pending(t, id));
        lag = lag.max(pg::select_one::<f64>(&sql, &[]).unwrap_or(0.0));
    }
    Some(lag)
}

/// Rebuild the internal views of a view's sub-queries, innermost first.
fn rebuild_subqueries(entry: &catalog::ViewRef) {
    for child in catalog::subqueries(entry.id) {
        rebuild_subqueries(&child);
        run(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", pg::qualified_relation_name(child.view)));
        apply::rebuild_view(&child);
    }
}

/// Drop the view and everything pg_tide made for it.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_view(name: Option<&str>) {
    let name = required(name, "view name");
    let entry = catalog::resolve(name);
    catalog::check_owner(&entry, "drop");
    // The sql_drop event trigger removes the catalog row and the query's view.
    run(&format!("DROP TABLE {}", pg::qualified_relation_name(entry.view)));
}

/// Recompute the view's query and compare it with the view as multisets.
/// A view that reads internal views of its sub-queries is equal to its
/// query when it equals its query over their tables and each of them
/// equals its own query: all are checked.
#[pg_extern(volatile, parallel_unsafe)]
fn verify(name: Option<&str>) -> bool {
    let name = required(name, "view name");
    verify_view(&catalog::resolve(name))
}

fn verify_view(entry: &catalog::ViewRef) -> bool {
    // Every internal view is checked (each reports its own differences).
    let mut equal = true;
    for child in catalog::subqueries(entry.id) {
        equal &= verify_view(&child);
    }
    verify_rows(entry) && equal
}

fn verify_rows(entry: &catalog::ViewRef) -> bool {
    // As its owner, who builds and maintains it (row-level security, current_user).
    apply::as_owner(entry.owner, || verify_rows_as_owner(entry))
}

fn verify_rows_as_owner(entry: &catalog::ViewRef) -> bool {
    let columns = view_columns(entry.definition);
    let stmt =
        sql::verify_statement(&pg::qualified_relation_name(entry.view), &pg::qualified_relation_name(entry.definition), &columns, 10);
    let (extra, missing, sample) = Spi::connect(|client| {
        let row = client.select(stmt.as_str(), Some(1), &[])?.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
            row.get::<Vec<String>>(3)?.unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not verify the view: {e}"), None, None));
    if extra == 0 && missing == 0 {
        return true;
    }
    let (extra, missing, sample) = if columns.iter().any(|c| c.compare == Compare::Float) {
        // Rounding to 10 digits can split two close values: match them within the tolerance.
        let view_rows = fetch_rows(&sql::verify_rows_statement(&pg::qualified_relation_name(entry.view), &columns));
        let query_rows = fetch_rows(&sql::verify_rows_statement(&pg::qualified_relation_name(entry.definition), &columns));
        let (extra, missing) = compare::difference(view_rows, query_rows);
        if extra.is_empty() && missing.is_empty() {
            return true;
        }
        let show = |side: &str, r: &compare::Row| format!("{side}: {:?} {:?}", r.exact, r.floats);
        let sample: Vec<String> = extra
            .iter()
            .map(|r| show("in the view, not in the query", r))
            .chain(missing.iter().map(|r| show("in the query, not in the view", r)))
            .take(10)
            .collect();
        (extra.len() as i64, missing.len() as i64, sample)
    } else {
        (extra, missing, sample)
    };
    notice!(
        "view {} differs from its query: {extra} row(s) in the view but not in the query, {missing} in the query but not in the view\n{}",
        pg::qualified_relation_name(entry.view),
        sample.join("\n")
    );
    false
}

/// Rows of `verify_rows_statement`.
fn fetch_rows(stmt: &str) -> Vec<compare::Row> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(stmt, None, &[])? {
            out.push(compare::Row {
                exact: row.get::<Vec<Option<String>>>(1)?.unwrap_or_default(),
                floats: row.get::<Vec<Option<f64>>>(2)?.unwrap_or_default(),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not verify the view: {e}"), None, None))
}

/// The relational plan pg_tide derives from a query, one operator a row.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn explain(
    query: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(id, i32),
        name!(parent_id, Option<i32>),
        name!(depth, i32),
        name!(operator, String),
        name!(detail, String),
        name!(incremental, bool),
        name!(rule, String),
        name!(reason, Option<String>),
        name!(lock, Option<String>),
    ),
> {
    let query = required(query, "query");
    let analyzed = analyze::analyze(query);
    for n in &analyzed.notices {
        notice!("{n}");
    }
    let rows = explain::explain_rows(&analyzed.tree)
        .into_iter()
        .map(|r| (r.id, r.parent, r.depth, r.operator, r.detail, r.incremental, r.rule, r.reason, r.lock))
        .collect::<Vec<_>>();
    TableIterator::new(rows)
}

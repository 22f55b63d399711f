//! From the SQL text a user gives to the relational IR, by PostgreSQL itself:
//! `raw_parser` (one SELECT statement), `parse_analyze_fixedparams` (names,
//! types, operators resolved), `QueryRewrite` (views used as sources expanded),
//! then the checks that make a query maintainable at all, then `to_ir`.

mod by_key;
mod checks;
mod flatten;
mod grouping;
mod having;
mod outer;
pub mod plan;
mod quantified;
mod recursive;
mod security;
mod select_scalars;
mod setop;
pub mod sublinks;
mod to_ir;
mod topk;
mod windows;

use crate::ir::Node;
use crate::pg::{self, raise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::CString;

/// A query that passed analysis.
pub struct Analyzed {
    pub tree: Node,
    /// Notices to show the user (e.g. ORDER BY without LIMIT is ignored).
    pub notices: Vec<String>,
    /// The query deparsed by ruleutils with an empty search_path: every name
    /// qualified where needed, so the text means the same whoever runs it.
    pub canonical_sql: String,
    /// The queries of the internal views the view needs, each deparsed like
    /// `canonical_sql`, without repeats: sub-queries in FROM that the join
    /// block cannot absorb (they aggregate, say), and the distinct join keys
    /// of each side an outer join pads. pg_tide maintains each as a view of
    /// its own, which the view's plan reads as a table (see `plan_query`).
    pub internal_views: Vec<String>,
}

/// Parse, analyze, rewrite and check `sql`, then build its IR.
/// Raises an ERROR (with PostgreSQL's own message for parse errors) on bad input.
pub fn analyze(sql: &str) -> Analyzed {
    analyze_named(sql, &[])
}

/// `analyze`, the query's first columns named `columns` (as by
/// `CREATE VIEW name (columns)`): the canonical text has the names.
pub fn analyze_named(sql: &str, columns: &[String]) -> Analyzed {
    // SAFETY: called on the backend thread inside a transaction; every pointer
    // used below comes from PostgreSQL in this call and lives in the current
    // memory context until the call returns.
    unsafe {
        let (canonical_sql, m) = prepare(sql, columns);
        // Found as `plan_query` will find them, from the stored definition.
        let (_, stored) = prepare(&canonical_sql, &[]);
        let internal_views = internal_view_queries(&stored);
        let mut notices = Vec::new();
        let anti: Vec<*mut pg_sys::Node> = m.anti.iter().map(|a| a.conjunct).collect();
        security::policies_as_conditions(m.query);
        let tree = to_ir::query_to_ir(m.query, &anti, &mut notices);
        Analyzed { tree, notices, canonical_sql, internal_views }
    }
}

/// Parse, analyze, rewrite and check `sql`; returns its canonical text and
/// the Query as `maintained_form` makes it.
unsafe fn prepare(sql: &str, columns: &[String]) -> (String, Maintained) {
    let query = parse_single_select(sql);
    checks::check_statement(query);
    let rewritten = pg::list::<pg_sys::Query>(pg_sys::QueryRewrite(pg_sys::copyObjectImpl(query.cast()).cast()));
    if rewritten.len() != 1 {
        raise(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "the query's rewrite rules produce more than one statement", None, None);
    }
    let q = rewritten[0];
    name_columns(q, columns);
    checks::check_tree(q);
    // The stored definition is the rewritten query: views used as sources
    // are expanded once, here, so replacing such a view later does not
    // change what the pg_tide view computes.
    let canonical_sql = deparse_without_search_path(q);
    (canonical_sql, maintained_form(q))
}

/// Name the first columns of `q` `columns`, as CREATE VIEW's column list does.
unsafe fn name_columns(q: *mut pg_sys::Query, columns: &[String]) {
    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    if columns.len() > targets.len() {
        raise(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            "too many column names were specified",
            Some(format!("{} names for a query of {} columns.", columns.len(), targets.len())),
            None,
        );
    }
    for (t, name) in targets.iter().zip(columns) {
        let name = CString::new(name.as_str()).expect("no NUL in a name");
        (**t).resname = pg_sys::pstrdup(name.as_ptr());
    }
}

/// A query in the form the engine maintains it.
pub(crate) struct Maintained {
    query: *mut pg_sys::Query,
    anti: Vec<sublinks::Anti>,
}

/// Correlated scalar sub-queries of the select list as LEFT JOINs (see
/// `select_scalars`), LIMIT over a sub-query (see `topk`), CTEs inlined, simple sub-queries
/// pulled up, sub-links unnested into joins with sub-queries (see `sublinks`).
pub(crate) unsafe fn maintained_form(q: *mut pg_sys::Query) -> Maintained {
    from_one_row(q);
    setop::nested_as_branches(q);
    by_key::exists_by_key(q);
    quantified::as_aggregates(q);
    topk::lateral_as_ranked(q);
    let q = windows::rows_under_windows(q);
    let q = select_scalars::as_left_joins(q);
    let q = topk::limit_over_subquery(q);
    let q = grouping::distinct_over_groups(q);
    let q = grouping::as_union(q);
    let q = having::scalars_over_groups(q);
    let q = windows::groups_under_windows(q);
    let q = grouping::distinct_on_over_rows(q);
    recursive::components_as_subqueries(q);
    flatten::inline_ctes(q);
    let q = flatten::pull_up_subqueries(q);
    let anti = sublinks::unnest(q);
    Maintained { query: q, anti }
}

/// A query without FROM (`SELECT 1`, `SELECT (SELECT count(*) FROM t)`)
/// reads one row of nothing: a one-row VALUES list in its FROM, which the
/// engine maintains (constant) as it does any.
unsafe fn from_one_row(q: *mut pg_sys::Query) {
    if !(*q).setOperations.is_null() || (*q).jointree.is_null() || !(*(*q).jointree).fromlist.is_null() {
        return;
    }
    let one = parse_query("SELECT FROM (VALUES (true)) AS __tide_one_row(x)");
    let rte = pg_sys::list_nth((*one).rtable, 0);
    (*q).rtable = pg_sys::lappend((*q).rtable, rte);
    let r = sublinks::range_table_ref(pg_sys::list_length((*q).rtable));
    (*(*q).jointree).fromlist = pg_sys::lappend(std::ptr::null_mut(), r.cast());
}

/// The range table entries of the sub-queries that become internal views:
/// the branches of a set operation; stand-alone sub-queries in FROM, then
/// the keys of NOT EXISTS.
unsafe fn internal_subqueries(m: &Maintained) -> Vec<i32> {
    if !(*m.query).setOperations.is_null() {
        return setop::internal_branches(m.query);
    }
    let mut out = flatten::standalone_subqueries(m.query);
    for a in &m.anti {
        out.push(a.rtindex);
        out.extend(a.not_in.map(|(flags, _)| flags));
        out.extend(a.other.as_ref().map(|o| o.counts));
    }
    out
}

/// A query written by pg_tide itself, parsed and analyzed (and rewritten).
pub(crate) unsafe fn parse_query(sql: &str) -> *mut pg_sys::Query {
    let q = parse_single_select(sql);
    pg::list::<pg_sys::Query>(pg_sys::QueryRewrite(q))[0]
}

/// The query of the internal view of sub-query `rtindex` (see `internal_subqueries`).
unsafe fn internal_query(m: &Maintained, rtindex: i32) -> String {
    if !(*m.query).setOperations.is_null() {
        setop::internal_query(m.query, rtindex)
    } else {
        subquery_sql(m.query, rtindex)
    }
}

/// The sub-query at `rtindex` of `q`, deparsed with an empty search_path.
unsafe fn subquery_sql(q: *mut pg_sys::Query, rtindex: i32) -> String {
    let rte = pg_sys::list_nth((*q).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
    deparse_without_search_path((*rte).subquery)
}

thread_local! {
    /// Cursor position of the last parser error, captured by `remember_position`.
    static ERROR_POSITION: Cell<i32> = const { Cell::new(0) };
}

/// Error context callback: remember the cursor position of the error being raised.
#[pg_guard]
unsafe extern "C-unwind" fn remember_position(_arg: *mut std::ffi::c_void) {
    ERROR_POSITION.with(|p| p.set(pg_sys::geterrposition()));
}

/// Parse and analyze exactly one SELECT statement.
///
/// Errors from the parser and analyzer keep PostgreSQL's message and SQLSTATE;
/// the position they carry is relative to the view's query rather than to the
/// statement the user typed, so it is added as a DETAIL showing the spot.
unsafe fn parse_single_select(sql: &str) -> *mut pg_sys::Query {
    let text = CString::new(sql)
        .unwrap_or_else(|_| raise(PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, "query contains a NUL character", None, None));
    ERROR_POSITION.with(|p| p.set(0));
    let mut callback = pg_sys::ErrorContextCallback {
        previous: pg_sys::error_context_stack,
        callback: Some(remember_position),
        arg: std::ptr::null_mut(),
    };
    let saved = pg_sys::error_context_stack;
    pg_sys::error_context_stack = &mut callback;
    let result = PgTryBuilder::new(|| {
        let stmts = pg::list::<pg_sys::RawStmt>(pg_sys::raw_parser(text.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT));
        match stmts.len() {
            0 => raise(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, "the view's query is empty", None, Some("Give a single SELECT statement.")),
            1 => {}
            n => raise(
                PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
                format!("the view's query must be a single SELECT statement, not {n} statements"),
                None,
                None,
            ),
        }
        let raw = stmts[0];
        let stmt = (*raw).stmt;
        if !pg::is_a(stmt, pg_sys::NodeTag::T_SelectStmt) {
            raise(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("the view's query must be a SELECT statement, not {}", statement_kind(sql, raw)),
                None,
                None,
            );
        }
        if !(*(stmt as *mut pg_sys::SelectStmt)).intoClause.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                "SELECT ... INTO cannot define a view",
                None,
                Some("Remove the INTO clause; the view itself stores the rows."),
            );
        }
        pg_sys::parse_analyze_fixedparams(raw, text.as_ptr(), std::ptr::null(), 0, std::ptr::null_mut())
    })
    .catch_others(|e| {
        let position = ERROR_POSITION.with(|p| p.get());
        match e {
            pg_sys::panic::CaughtError::PostgresError(ref report) if position > 0 => {
                let spot = crate::sql::format_position(sql, position as usize);
                let detail = match report.detail() {
                    Some(d) => format!("{d}\n{spot}"),
                    None => spot,
                };
                // Pop the callback before raising anew, so it does not see the new error.
                pg_sys::error_context_stack = saved;
                let mut r = pgrx::pg_sys::panic::ErrorReport::new(report.sql_error_code(), report.message().to_string(), function_name!())
                    .set_detail(detail);
                if let Some(h) = report.hint() {
                    r = r.set_hint(h.to_string());
                }
                r.report(PgLogLevel::ERROR);
                unreachable!()
            }
            other => other.rethrow(),
        }
    })
    .finally(|| pg_sys::error_context_stack = saved)
    .execute();
    result
}

/// The leading keyword(s) of a raw statement, for the "not a SELECT" error.
unsafe fn statement_kind(sql: &str, raw: *mut pg_sys::RawStmt) -> String {
    let start = (*raw).stmt_location.max(0) as usize;
    let words: Vec<&str> = sql.get(start..).unwrap_or(sql).split_whitespace().take(1).collect();
    words.join(" ").to_uppercase()
}

/// The query a pg_tide view's plan is made from: its definition view's
/// query (views used as sources expanded already at creation), CTEs inlined,
/// simple sub-queries pulled up, and every other stand-alone sub-query in
/// FROM replaced by the table of the internal view that maintains it; with
/// the tables of the internal views holding outer joins' keys.
/// `internal_views` are (query, table) of the view's internal views.
///
/// # Safety
/// `definition` must be the OID of an existing view.
pub unsafe fn plan_query(definition: pg_sys::Oid, internal_views: &[(String, pg_sys::Oid)]) -> plan::PlanQuery {
    let rel = pg_sys::relation_open(definition, pg_sys::AccessShareLock as i32);
    let q = pg_sys::copyObjectImpl(pg_sys::get_view_query(rel).cast()) as *mut pg_sys::Query;
    pg_sys::relation_close(rel, pg_sys::AccessShareLock as i32);
    pg_sys::AcquireRewriteLocks(q, true, false);
    let m = maintained_form(pg::list::<pg_sys::Query>(pg_sys::QueryRewrite(q))[0]);
    let q = m.query;
    let wanted = internal_view_queries(&m);
    if wanted.len() != internal_views.len() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the view needs {} internal views and has {}", wanted.len(), internal_views.len()),
            None,
            Some("Drop the view and create it again."),
        );
    }
    let table_of = |text: &str| internal_views[wanted.iter().position(|w| w == text).expect("listed by internal_view_queries")].1;
    let mut keys = Vec::new();
    for needed in outer::keys_needed(q) {
        if let Some(split) = &needed.split {
            let (table, columns) = match outer::grouped_keys_side(q, needed.keys_side, split) {
                Some((rtindex, attnos)) => {
                    let table = table_of(&internal_query(&m, rtindex));
                    let names = pg::columns(table);
                    (table, attnos.iter().map(|&a| names[a as usize - 1].0.clone()).collect())
                }
                None => {
                    let n = split.equalities.len();
                    (table_of(&outer::keys_query(q, needed.keys_side, split)), (1..=n).map(|i| format!("k{i}")).collect())
                }
            };
            keys.push(plan::OuterKeys { join: needed.join, side: needed.keys_side, table, columns });
        }
    }
    for rtindex in internal_subqueries(&m) {
        flatten::replace_with_table(q, rtindex, table_of(&internal_query(&m, rtindex)));
    }
    security::policies_as_conditions(q);
    plan::PlanQuery { query: q, keys, anti: m.anti }
}

/// The queries of the internal views a query needs, in a fixed order,
/// without repeats (see `Analyzed::internal_views`). Matched to the views'
/// tables by position: both lists come from the same stored query.
unsafe fn internal_view_queries(m: &Maintained) -> Vec<String> {
    let q = m.query;
    let mut out: Vec<String> = Vec::new();
    let texts = internal_subqueries(m).into_iter().map(|rtindex| internal_query(m, rtindex)).chain(
        outer::keys_needed(q).into_iter().filter_map(|n| {
            n.split.as_ref().filter(|s| outer::grouped_keys_side(q, n.keys_side, s).is_none()).map(|s| outer::keys_query(q, n.keys_side, s))
        }),
    );
    for text in texts {
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// `pg_get_querydef` under `search_path = ''`, restored afterwards (as
/// pg_dump does, so that names resolve the same for any user and path).
unsafe fn deparse_without_search_path(query: *mut pg_sys::Query) -> String {
    let nest = pg::push_search_path(c"");
    let text = pg::cstr(pg_sys::pg_get_querydef(query, false));
    pg_sys::AtEOXact_GUC(true, nest);
    text
}

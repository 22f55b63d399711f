//! From the SQL text a user gives to the relational IR, by PostgreSQL itself:
//! `raw_parser` (one SELECT statement), `parse_analyze_fixedparams` (names,
//! types, operators resolved), `QueryRewrite` (views used as sources expanded),
//! then the checks that make a query maintainable at all, then `to_ir`.

mod checks;
mod flatten;
pub mod plan;
mod to_ir;

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
    /// Sub-queries in FROM that the join block cannot absorb (they aggregate,
    /// say), each deparsed like `canonical_sql`, without repeats: pg_tide
    /// maintains each as a view of its own (see `reading_tables`).
    pub subqueries: Vec<String>,
}

/// Parse, analyze, rewrite and check `sql`, then build its IR.
/// Raises an ERROR (with PostgreSQL's own message for parse errors) on bad input.
pub fn analyze(sql: &str) -> Analyzed {
    // SAFETY: called on the backend thread inside a transaction; every pointer
    // used below comes from PostgreSQL in this call and lives in the current
    // memory context until the call returns.
    unsafe {
        let (canonical_sql, q) = prepare(sql);
        let mut subqueries: Vec<String> = Vec::new();
        for rtindex in flatten::standalone_subqueries(q) {
            let text = subquery_sql(q, rtindex);
            if !subqueries.contains(&text) {
                subqueries.push(text);
            }
        }
        let mut notices = Vec::new();
        let tree = to_ir::query_to_ir(q, &mut notices);
        Analyzed { tree, notices, canonical_sql, subqueries }
    }
}

/// The query `sql` with each of its stand-alone sub-queries in FROM (as
/// `Analyzed::subqueries` lists them) replaced by the table that holds its
/// rows, deparsed with an empty search_path.
pub fn reading_tables(sql: &str, tables: &[(String, pg_sys::Oid)]) -> String {
    // SAFETY: as in `analyze`.
    unsafe {
        let (_, q) = prepare(sql);
        for rtindex in flatten::standalone_subqueries(q) {
            let text = subquery_sql(q, rtindex);
            let (_, relid) = tables.iter().find(|(t, _)| *t == text).expect("every stand-alone sub-query has its table");
            flatten::replace_with_table(q, rtindex, *relid);
        }
        deparse_without_search_path(q)
    }
}

/// Parse, analyze, rewrite and check `sql`; returns its canonical text and
/// the Query with CTEs inlined and simple sub-queries pulled up.
unsafe fn prepare(sql: &str) -> (String, *mut pg_sys::Query) {
    let query = parse_single_select(sql);
    checks::check_statement(query);
    let rewritten = pg::list::<pg_sys::Query>(pg_sys::QueryRewrite(pg_sys::copyObjectImpl(query.cast()).cast()));
    if rewritten.len() != 1 {
        raise(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "the query's rewrite rules produce more than one statement", None, None);
    }
    let q = rewritten[0];
    checks::check_tree(q);
    // The stored definition is the rewritten query: views used as sources
    // are expanded once, here, so replacing such a view later does not
    // change what the pg_tide view computes.
    let canonical_sql = deparse_without_search_path(q);
    flatten::inline_ctes(q);
    (canonical_sql, flatten::pull_up_subqueries(q))
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

/// The stored query of a pg_tide view's definition view, as the engine
/// maintains it: views used as sources expanded (already so at creation),
/// simple sub-queries pulled up.
///
/// # Safety
/// `definition` must be the OID of an existing view.
pub unsafe fn definition_query(definition: pg_sys::Oid) -> *mut pg_sys::Query {
    let rel = pg_sys::relation_open(definition, pg_sys::AccessShareLock as i32);
    let q = pg_sys::copyObjectImpl(pg_sys::get_view_query(rel).cast()) as *mut pg_sys::Query;
    pg_sys::relation_close(rel, pg_sys::AccessShareLock as i32);
    pg_sys::AcquireRewriteLocks(q, true, false);
    let rewritten = pg::list::<pg_sys::Query>(pg_sys::QueryRewrite(q));
    flatten::inline_ctes(rewritten[0]);
    flatten::pull_up_subqueries(rewritten[0])
}

/// `pg_get_querydef` under `search_path = ''`, restored afterwards (as
/// pg_dump does, so that names resolve the same for any user and path).
unsafe fn deparse_without_search_path(query: *mut pg_sys::Query) -> String {
    let nest = pg::push_search_path(c"");
    let text = pg::cstr(pg_sys::pg_get_querydef(query, false));
    pg_sys::AtEOXact_GUC(true, nest);
    text
}

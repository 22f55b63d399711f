//! What makes a query unfit to define a maintained view, found on the
//! analyzed tree: functions whose result depends on when they run, system
//! columns, sources whose changes pg_tide cannot see.

use crate::pg::{self, raise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::c_void;

/// Checks on the top-level statement itself.
pub unsafe fn check_statement(q: *mut pg_sys::Query) {
    if (*q).commandType != pg_sys::CmdType::CMD_SELECT || !(*q).utilityStmt.is_null() {
        raise(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, "the view's query must be a SELECT statement", None, None);
    }
    if (*q).hasModifyingCTE {
        raise(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "a view's query cannot contain data-modifying statements in WITH", None, None);
    }
    if !(*q).rowMarks.is_null() {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "FOR UPDATE, FOR SHARE and the like cannot be used in a view's query",
            None,
            None,
        );
    }
}

/// What the tree walk found first.
#[derive(Default)]
struct Found {
    mutable_function: Option<pg_sys::Oid>,
    /// The aggregate `mutable_function` is a support function of.
    aggregate: Option<pg_sys::Oid>,
    /// Aggregates not of PostgreSQL's own: pg_proc marks every aggregate
    /// IMMUTABLE, so their support functions are checked after the walk.
    user_aggregates: Vec<pg_sys::Oid>,
    problem: Option<(PgSqlErrorCode, String, Option<&'static str>)>,
}

/// Walk the whole (rewritten) query, sub-queries and CTEs included.
pub unsafe fn check_tree(q: *mut pg_sys::Query) {
    let mut found = Found::default();
    walk(q.cast(), (&mut found as *mut Found).cast());
    for aggregate in std::mem::take(&mut found.user_aggregates) {
        let support: Option<pg_sys::Oid> = pg::select_one(
            "SELECT p.oid FROM pg_catalog.pg_aggregate a JOIN pg_catalog.pg_proc p \
             ON p.oid IN (a.aggtransfn, a.aggfinalfn, a.aggmtransfn, a.aggmfinalfn) \
             WHERE a.aggfnoid = $1 AND p.provolatile <> 'i' LIMIT 1",
            &[aggregate.into()],
        );
        if support.is_some() && found.mutable_function.is_none() {
            found.mutable_function = support;
            found.aggregate = Some(aggregate);
        }
    }
    if let Some(f) = found.mutable_function {
        let mut name = pg::cstr(pg_sys::format_procedure(f));
        if let Some(a) = found.aggregate {
            name.push_str(&format!(" (of aggregate {})", pg::cstr(pg_sys::format_procedure(a))));
        }
        let volatility = match pg_sys::func_volatile(f) as u8 {
            b'v' => "VOLATILE",
            _ => "STABLE",
        };
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!("function {name} is not IMMUTABLE: a maintained view cannot use it"),
            Some(format!("{name} is {volatility}, so the view's rows would depend on when they were computed rather than on the data.")),
            Some("Use only IMMUTABLE functions and operators, or pass such values in as data."),
        );
    }
    if let Some((code, msg, hint)) = found.problem {
        raise(code, msg, None, hint);
    }
}

/// check_functions_in_node callback: true (stop) for a function that is not IMMUTABLE.
#[pg_guard]
unsafe extern "C-unwind" fn not_immutable(func: pg_sys::Oid, ctx: *mut c_void) -> bool {
    if pg_sys::func_volatile(func) as u8 != b'i' {
        let found = &mut *(ctx as *mut Found);
        found.mutable_function.get_or_insert(func);
        return true;
    }
    false
}

#[pg_guard]
unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let found = &mut *(ctx as *mut Found);
    if found.mutable_function.is_some() || found.problem.is_some() {
        return true;
    }
    use pg_sys::NodeTag::*;
    match (*node).type_ {
        T_Query => {
            let q = node as *mut pg_sys::Query;
            for rte in pg::list::<pg_sys::RangeTblEntry>((*q).rtable) {
                check_range_table_entry(rte, found);
                if found.problem.is_some() {
                    return true;
                }
            }
            return pg_sys::query_tree_walker(q, Some(walk), ctx, 0);
        }
        T_Var => {
            let var = node as *mut pg_sys::Var;
            if (*var).varattno < 0 {
                found.problem = Some((
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("system column {} cannot be used in a maintained view", system_column_name((*var).varattno)),
                    Some("System columns such as ctid and xmin change when rows are rewritten; select user columns only."),
                ));
                return true;
            }
        }
        // The current user is the view's owner whenever its query runs
        // (build, maintenance, verify), as for REFRESH MATERIALIZED VIEW:
        // row-level security policies often compare with it.
        T_SQLValueFunction
            if matches!(
                (*(node as *mut pg_sys::SQLValueFunction)).op,
                pg_sys::SQLValueFunctionOp::SVFOP_CURRENT_USER
                    | pg_sys::SQLValueFunctionOp::SVFOP_CURRENT_ROLE
                    | pg_sys::SQLValueFunctionOp::SVFOP_USER
            ) => {}
        T_SQLValueFunction => {
            found.problem = Some((
                PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                format!(
                    "{} is not IMMUTABLE: a maintained view cannot use it",
                    sql_value_function_name((*(node as *mut pg_sys::SQLValueFunction)).op)
                ),
                Some("Use only IMMUTABLE functions and operators, or pass such values in as data."),
            ));
            return true;
        }
        T_Aggref => {
            let f = (*(node as *mut pg_sys::Aggref)).aggfnoid;
            if f.to_u32() >= pg_sys::FirstNormalObjectId {
                found.user_aggregates.push(f);
            }
        }
        T_NextValueExpr => {
            found.problem = Some((
                PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                "nextval() is not IMMUTABLE: a maintained view cannot use it".into(),
                None,
            ));
            return true;
        }
        _ => {}
    }
    if deterministic_json(node) {
        // Its arguments still get checked.
        return pg_sys::expression_tree_walker(node, Some(walk), ctx);
    }
    if pg_sys::check_functions_in_node(node, Some(not_immutable), ctx) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walk), ctx)
}

/// PostgreSQL marks the JSON constructors STABLE because they print values
/// of any type, and some types print according to settings (timestamptz by
/// TimeZone). Over arguments whose every value prints the same way always,
/// their result depends on the data alone: such calls are accepted.
unsafe fn deterministic_json(node: *mut pg_sys::Node) -> bool {
    const JSON_CONSTRUCTORS: &[&str] = &[
        "to_json",
        "to_jsonb",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "jsonb_object_agg",
        "json_build_object",
        "jsonb_build_object",
        "json_build_array",
        "jsonb_build_array",
        "row_to_json",
        "array_to_json",
    ];
    let (func, args): (pg_sys::Oid, Vec<*mut pg_sys::Node>) = if pg::is_a(node, pg_sys::NodeTag::T_FuncExpr) {
        let f = node as *mut pg_sys::FuncExpr;
        ((*f).funcid, pg::list((*f).args))
    } else if pg::is_a(node, pg_sys::NodeTag::T_Aggref) {
        let a = node as *mut pg_sys::Aggref;
        ((*a).aggfnoid, pg::list::<pg_sys::TargetEntry>((*a).args).into_iter().map(|t| (*t).expr.cast()).collect())
    } else {
        return false;
    };
    pg_sys::get_func_namespace(func).to_u32() == pg_sys::PG_CATALOG_NAMESPACE
        && JSON_CONSTRUCTORS.contains(&pg::cstr(pg_sys::get_func_name(func)).as_str())
        && args.iter().all(|&a| prints_the_same_always(pg_sys::exprType(a), 0))
}

/// Whether every value of type `typid` has one JSON form whatever the
/// settings: a built-in type with an IMMUTABLE output function, date and
/// timestamp (JSON writes them in ISO form, whatever DateStyle says), or a
/// domain, array or composite type over such.
unsafe fn prints_the_same_always(typid: pg_sys::Oid, depth: u32) -> bool {
    if depth > 8 {
        return false;
    }
    let base = pg_sys::getBaseType(typid);
    let element = pg_sys::get_element_type(base);
    if element != pg_sys::InvalidOid {
        return prints_the_same_always(element, depth + 1);
    }
    if pg_sys::get_typtype(base) as u8 == b'c' {
        let desc = pg_sys::lookup_rowtype_tupdesc(base, -1);
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let all = attrs.iter().filter(|a| !a.attisdropped).all(|a| prints_the_same_always(a.atttypid, depth + 1));
        pg_sys::DecrTupleDescRefCount(desc);
        return all;
    }
    if base == pg_sys::DATEOID || base == pg_sys::TIMESTAMPOID {
        return true;
    }
    let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
    pg_sys::getTypeOutputInfo(base, &mut output, &mut varlena);
    base.to_u32() < pg_sys::FirstNormalObjectId && pg_sys::func_volatile(output) as u8 == b'i'
}

unsafe fn check_range_table_entry(rte: *mut pg_sys::RangeTblEntry, found: &mut Found) {
    if !(*rte).tablesample.is_null() {
        found.problem =
            Some((PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "TABLESAMPLE cannot be used in a maintained view".into(), None));
        return;
    }
    if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
        return;
    }
    let relid = (*rte).relid;
    let name = pg::qualified_relation_name(relid);
    match (*rte).relkind as u8 {
        // 'v': after rewriting, a view used as a source is a sub-query; its
        // own entry stays in the range table only for permission checks.
        b'r' | b'p' | b'v' => {}
        b'm' => {
            found.problem = Some((
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("materialized view {name} cannot be a source of a maintained view"),
                Some("pg_tide cannot see when a materialized view is refreshed; make it a pg_tide view instead."),
            ))
        }
        b'f' => {
            found.problem = Some((
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("foreign table {name} cannot be a source of a maintained view"),
                Some("pg_tide cannot see changes made on a foreign server."),
            ))
        }
        _ => {
            found.problem = Some((
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("relation {name} cannot be a source of a maintained view"),
                None,
            ))
        }
    }
    if found.problem.is_none() && pg_sys::get_rel_persistence(relid) as u8 == b't' {
        found.problem = Some((
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("temporary table {name} cannot be a source of a maintained view"),
            Some("A temporary table disappears with its session; the view would outlive it."),
        ));
    }
}

fn system_column_name(attno: i16) -> &'static str {
    match attno {
        -1 => "ctid",
        -2 => "xmin",
        -3 => "cmin",
        -4 => "xmax",
        -5 => "cmax",
        -6 => "tableoid",
        _ => "(system column)",
    }
}

fn sql_value_function_name(op: pg_sys::SQLValueFunctionOp::Type) -> &'static str {
    use pg_sys::SQLValueFunctionOp::*;
    match op {
        SVFOP_CURRENT_DATE => "current_date",
        SVFOP_CURRENT_TIME | SVFOP_CURRENT_TIME_N => "current_time",
        SVFOP_CURRENT_TIMESTAMP | SVFOP_CURRENT_TIMESTAMP_N => "current_timestamp",
        SVFOP_LOCALTIME | SVFOP_LOCALTIME_N => "localtime",
        SVFOP_LOCALTIMESTAMP | SVFOP_LOCALTIMESTAMP_N => "localtimestamp",
        SVFOP_CURRENT_ROLE => "current_role",
        SVFOP_CURRENT_USER => "current_user",
        SVFOP_USER => "user",
        SVFOP_SESSION_USER => "session_user",
        SVFOP_CURRENT_CATALOG => "current_catalog",
        SVFOP_CURRENT_SCHEMA => "current_schema",
        _ => "this SQL value function",
    }
}

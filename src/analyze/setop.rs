//! UNION [ALL], INTERSECT, EXCEPT at the top of a view's query. Each branch
//! becomes an internal view whose rows carry the set operation's column
//! names and types (and, under INTERSECT or EXCEPT, the side they come
//! from); the view's input is the sum of those tables, one term each:
//! a bag for UNION ALL, groups for the others (UNION: the distinct rows;
//! INTERSECT: rows counted on both sides; EXCEPT: on the left side only).

use crate::pg;
use pgrx::pg_sys;

/// The column that tells an INTERSECT / EXCEPT branch's side (1 left, 2 right).
pub const SIDE: &str = "__tide_side";

/// The branches (range table indexes) of the set operation, left to right.
pub(super) unsafe fn leaves(node: *mut pg_sys::Node) -> Vec<i32> {
    if pg::is_a(node, pg_sys::NodeTag::T_RangeTblRef) {
        return vec![(*(node as *mut pg_sys::RangeTblRef)).rtindex];
    }
    let s = node as *mut pg_sys::SetOperationStmt;
    let mut out = leaves((*s).larg);
    out.extend(leaves((*s).rarg));
    out
}

/// Whether the set operation's branches carry their side: INTERSECT and EXCEPT.
pub(super) unsafe fn sided(q: *mut pg_sys::Query) -> bool {
    let s = (*q).setOperations as *mut pg_sys::SetOperationStmt;
    (*s).op != pg_sys::SetOperation::SETOP_UNION
}

/// Whether the set operation is INTERSECT ALL or EXCEPT ALL of two branches:
/// kept as one internal view of the distinct rows with their count per side
/// (`__tide_left`, `__tide_right`), read as a bag of so many copies.
pub(super) unsafe fn counted(q: *mut pg_sys::Query) -> bool {
    let s = (*q).setOperations as *mut pg_sys::SetOperationStmt;
    (*s).all
        && (*s).op != pg_sys::SetOperation::SETOP_UNION
        && pg::is_a((*s).larg, pg_sys::NodeTag::T_RangeTblRef)
        && pg::is_a((*s).rarg, pg_sys::NodeTag::T_RangeTblRef)
}

/// The branches that become internal views: all of them, or for a counted
/// operation the first one standing for the counts' view.
pub(super) unsafe fn internal_branches(q: *mut pg_sys::Query) -> Vec<i32> {
    let all = leaves((*q).setOperations);
    if counted(q) {
        all[..1].to_vec()
    } else {
        all
    }
}

/// The query of the internal view standing for branch `rtindex`.
pub(super) unsafe fn internal_query(q: *mut pg_sys::Query, rtindex: i32) -> String {
    if !counted(q) {
        return branch_query(q, rtindex);
    }
    let cols: Vec<String> = names(q).iter().map(|n| pg::quote_ident(n)).collect();
    let sides: Vec<String> = leaves((*q).setOperations).into_iter().map(|rt| branch_query(q, rt)).collect();
    format!(
        "SELECT {c}, count(*) FILTER (WHERE {SIDE} = 1) AS __tide_left, count(*) FILTER (WHERE {SIDE} = 2) AS __tide_right \
         FROM ({} UNION ALL {}) AS u GROUP BY {c}",
        sides[0],
        sides[1],
        c = cols.join(", ")
    )
}

/// The output column names of `q`.
pub(super) unsafe fn names(q: *mut pg_sys::Query) -> Vec<String> {
    pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).map(|t| pg::cstr((*t).resname)).collect()
}

/// The query of the internal view of branch `rtindex`: its rows cast to
/// the set operation's column types, under its column names, with their
/// side when `sided`. Text, for `build` to analyze like a user's query.
pub(super) unsafe fn branch_query(q: *mut pg_sys::Query, rtindex: i32) -> String {
    let s = (*q).setOperations as *mut pg_sys::SetOperationStmt;
    let rte = pg_sys::list_nth((*q).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
    let branch = super::deparse_without_search_path((*rte).subquery);
    let types: Vec<pg_sys::Oid> = oids((*s).colTypes);
    let typmods: Vec<i32> = ints((*s).colTypmods);
    let names = names(q);
    let mut cols: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let flags = (pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN | pg_sys::FORMAT_TYPE_FORCE_QUALIFY) as u16;
            let ty = pg::cstr(pg_sys::format_type_extended(types[i], typmods.get(i).copied().unwrap_or(-1), flags));
            format!("CAST(b.c{} AS {ty}) AS {}", i + 1, pg::quote_ident(n))
        })
        .collect();
    if sided(q) {
        let left = leaves((*s).larg).contains(&rtindex);
        cols.push(format!("{} AS {SIDE}", if left { 1 } else { 2 }));
    }
    let aliases: Vec<String> = (1..=names.len()).map(|i| format!("c{i}")).collect();
    format!("SELECT {} FROM ({}) AS b({})", cols.join(", "), branch.trim(), aliases.join(", "))
}

unsafe fn oids(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    (0..pg_sys::list_length(list)).map(|i| pg_sys::list_nth_oid(list, i)).collect()
}

unsafe fn ints(list: *mut pg_sys::List) -> Vec<i32> {
    (0..pg_sys::list_length(list)).map(|i| pg_sys::list_nth_int(list, i)).collect()
}

/// Set operations nested otherwise than the engine takes them at once
/// (UNION ALL trees, UNION over UNION [ALL], INTERSECT [ALL] and EXCEPT
/// [ALL] of two branches): each such child, `(A UNION B) EXCEPT C`'s left
/// one say, becomes a branch of its own, a sub-query whose set operation
/// its internal view maintains.
///
/// # Safety
/// `q` must be an analyzed SELECT Query of pg_tide's own (changed in place).
pub(super) unsafe fn nested_as_branches(q: *mut pg_sys::Query) {
    if (*q).setOperations.is_null() {
        return;
    }
    let leftmost = leaves((*q).setOperations)[0];
    let top = (*q).setOperations as *mut pg_sys::SetOperationStmt;
    (*top).larg = fitted(q, (*top).larg, top);
    (*top).rarg = fitted(q, (*top).rarg, top);
    // The query's columns are Vars of its leftmost branch.
    let now = leaves((*q).setOperations)[0];
    if now != leftmost {
        for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
            let v = (*t).expr as *mut pg_sys::Var;
            if pg::is_a(v, pg_sys::NodeTag::T_Var) && (*v).varno == leftmost {
                (*v).varno = now;
                (*v).varnosyn = now as _;
            }
        }
    }
}

/// `child` of set operation `top`, itself if the two are taken together,
/// else as a branch of its own.
unsafe fn fitted(q: *mut pg_sys::Query, child: *mut pg_sys::Node, top: *mut pg_sys::SetOperationStmt) -> *mut pg_sys::Node {
    if !pg::is_a(child, pg_sys::NodeTag::T_SetOperationStmt) {
        return child;
    }
    let c = child as *mut pg_sys::SetOperationStmt;
    let union = pg_sys::SetOperation::SETOP_UNION;
    let together = (*top).op == union && (*c).op == union && (!(*top).all || (*c).all);
    if together {
        (*c).larg = fitted(q, (*c).larg, top);
        (*c).rarg = fitted(q, (*c).rarg, top);
        return child;
    }
    let sub = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    (*sub).setOperations = child;
    (*sub).sortClause = std::ptr::null_mut();
    (*sub).limitCount = std::ptr::null_mut();
    (*sub).limitOffset = std::ptr::null_mut();
    (*sub).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
    let branch = super::parse_query(&super::deparse_without_search_path(sub));
    let rt = super::sublinks::add_subquery(q, branch, "set");
    super::sublinks::range_table_ref(rt).cast()
}

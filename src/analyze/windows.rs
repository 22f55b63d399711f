//! Window functions over GROUP BY: the groups are an internal view (G, with
//! the group keys and the aggregates the windows and the select list use as
//! columns) and the view's query computes the windows over G's rows (see
//! `delta::window`). Likewise window functions over rows with sub-queries
//! in the select list: the rows, with the columns and sub-queries the
//! select list reads, are an internal view (which keeps the sub-queries,
//! see `select_scalars`) and the windows are computed over its rows.

use super::sublinks::{add_subquery, new_select, range_table_ref};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// `q` with its groups moved into a sub-query under its windows, or `q`.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn groups_under_windows(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null();
    if !(*q).hasWindowFuncs || !grouped || !(*q).groupingSets.is_null() {
        return q;
    }
    let g = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let group_refs: Vec<pg_sys::Index> =
        pg::list::<pg_sys::SortGroupClause>((*g).groupClause).iter().map(|c| (**c).tleSortGroupRef).collect();
    // G: its group keys (as columns), then the aggregates lifted below.
    let mut keys: Vec<*mut pg_sys::TargetEntry> = Vec::new();
    for t in pg::list::<pg_sys::TargetEntry>((*g).targetList) {
        if group_refs.contains(&(*t).ressortgroupref) {
            (*t).resjunk = false;
            (*t).resno = (keys.len() + 1) as i16;
            let name = std::ffi::CString::new(format!("__tide_key_{}", keys.len() + 1)).expect("no NUL");
            (*t).resname = pg_sys::pstrdup(name.as_ptr());
            keys.push(t);
        }
    }
    (*g).windowClause = std::ptr::null_mut();
    (*g).hasWindowFuncs = false;
    (*g).sortClause = std::ptr::null_mut();
    (*g).distinctClause = std::ptr::null_mut();
    (*g).hasDistinctOn = false;
    let top = new_select();
    let g_rt = add_subquery(top, g, "groups");
    let mut ctx = Lift { g_rt, keys: keys.clone(), aggregates: Vec::new() };
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
        let te = pg_sys::copyObjectImpl(t.cast()) as *mut pg_sys::TargetEntry;
        (*te).expr = lift((*te).expr.cast(), (&mut ctx as *mut Lift).cast()).cast();
        list = pg_sys::lappend(list, te.cast());
    }
    // G's target list, final: the keys, then the aggregates.
    let below: Vec<*mut pg_sys::TargetEntry> = keys.iter().chain(ctx.aggregates.iter()).copied().collect();
    windows_over(q, top, g_rt, &below, list);
    top
}

/// Finish `top`, the query of `q`'s windows over the sub-query at range
/// table index `rt` (of `top`): the sub-query's target list is `below`,
/// `top`'s is `targets`, and `q`'s windows, ORDER BY, DISTINCT [ON] and
/// LIMIT go on `top`.
unsafe fn windows_over(
    q: *mut pg_sys::Query,
    top: *mut pg_sys::Query,
    rt: i32,
    below: &[*mut pg_sys::TargetEntry],
    targets: *mut pg_sys::List,
) {
    let entry = pg_sys::list_nth((*top).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    for t in below {
        list = pg_sys::lappend(list, (*t).cast());
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup((**t).resname)).cast());
    }
    (*(*entry).subquery).targetList = list;
    (*(*entry).eref).colnames = names;
    (*top).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(rt).cast()), std::ptr::null_mut());
    (*top).targetList = targets;
    (*top).windowClause = pg_sys::copyObjectImpl((*q).windowClause.cast()).cast();
    (*top).hasWindowFuncs = true;
    (*top).sortClause = pg_sys::copyObjectImpl((*q).sortClause.cast()).cast();
    (*top).distinctClause = pg_sys::copyObjectImpl((*q).distinctClause.cast()).cast();
    (*top).hasDistinctOn = (*q).hasDistinctOn;
    (*top).limitCount = (*q).limitCount;
    (*top).limitOffset = (*q).limitOffset;
}

struct Lift {
    g_rt: i32,
    keys: Vec<*mut pg_sys::TargetEntry>,
    /// Target entries added to G for the aggregates used above it.
    aggregates: Vec<*mut pg_sys::TargetEntry>,
}

/// An expression over G: group keys and aggregates become its columns.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn lift(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &mut *(ctx as *mut Lift);
    let var = |attno: usize, e: *mut pg_sys::Node| {
        pg_sys::makeVar(c.g_rt, attno as i16, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0)
            .cast::<pg_sys::Node>()
    };
    if let Some(i) = c.keys.iter().position(|k| pg_sys::equal((**k).expr.cast(), node.cast())) {
        return var(i + 1, node);
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Aggref) {
        let n = c.keys.len() + c.aggregates.len() + 1;
        let name = std::ffi::CString::new(format!("__tide_agg_{}", c.aggregates.len() + 1)).expect("no NUL");
        c.aggregates.push(pg_sys::makeTargetEntry(node.cast(), n as i16, pg_sys::pstrdup(name.as_ptr()), false));
        return var(n, node);
    }
    pg::mutate_children(node, lift, ctx)
}

/// `q` with its rows (FROM, WHERE, and the select list's sub-queries) moved
/// into a sub-query under its windows, when its select list has sub-queries
/// (and no grouping); or `q`.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn rows_under_windows(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).groupingSets.is_null() || !(*q).havingQual.is_null();
    if !(*q).hasWindowFuncs
        || grouped
        || !(*q).setOperations.is_null()
        || !(*q).cteList.is_null()
        || (*q).hasTargetSRFs
        || (*q).jointree.is_null()
        || !targets.iter().any(|t| super::to_ir::contains((**t).expr.cast(), pg_sys::NodeTag::T_SubLink))
    {
        return q;
    }
    // Whole-row and system columns are not taken (a column of R each).
    let mut vars = Vec::new();
    super::to_ir::collect((*q).targetList.cast(), pg_sys::NodeTag::T_Var, &mut vars);
    if vars.iter().any(|v| (*(*v as *mut pg_sys::Var)).varlevelsup == 0 && (*(*v as *mut pg_sys::Var)).varattno <= 0) {
        return q;
    }
    let r = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    // (Ungrouped: what is dropped is the windows, ORDER BY, DISTINCT and LIMIT.)
    super::outer::only_join_block(r);
    let top = new_select();
    let r_rt = add_subquery(top, r, "rows");
    let mut ctx = Columns { rt: r_rt, columns: Vec::new() };
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for t in targets {
        let te = pg_sys::copyObjectImpl(t.cast()) as *mut pg_sys::TargetEntry;
        (*te).expr = as_column((*te).expr.cast(), (&mut ctx as *mut Columns).cast()).cast();
        list = pg_sys::lappend(list, te.cast());
    }
    let below: Vec<*mut pg_sys::TargetEntry> = ctx
        .columns
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = std::ffi::CString::new(format!("__tide_col_{}", i + 1)).expect("no NUL");
            pg_sys::makeTargetEntry((*e).cast(), (i + 1) as i16, pg_sys::pstrdup(name.as_ptr()), false)
        })
        .collect();
    windows_over(q, top, r_rt, &below, list);
    top
}

struct Columns {
    rt: i32,
    /// R's columns: the query's own columns and sub-queries, in order met.
    columns: Vec<*mut pg_sys::Node>,
}

/// An expression over R: the query's columns and sub-queries become R's.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn as_column(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &mut *(ctx as *mut Columns);
    let own_column = pg::is_a(node, pg_sys::NodeTag::T_Var) && (*(node as *mut pg_sys::Var)).varlevelsup == 0;
    if own_column || pg::is_a(node, pg_sys::NodeTag::T_SubLink) {
        let i = match c.columns.iter().position(|e| pg_sys::equal((*e).cast(), node.cast())) {
            Some(i) => i,
            None => {
                c.columns.push(pg_sys::copyObjectImpl(node.cast()).cast());
                c.columns.len() - 1
            }
        };
        return pg_sys::makeVar(c.rt, (i + 1) as i16, pg_sys::exprType(node), pg_sys::exprTypmod(node), pg_sys::exprCollation(node), 0)
            .cast();
    }
    pg::mutate_children(node, as_column, ctx)
}

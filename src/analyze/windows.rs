//! Window functions over GROUP BY: the groups are an internal view (G, with
//! the group keys and the aggregates the windows and the select list use as
//! columns) and the view's query computes the windows over G's rows (see
//! `delta::window`).

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
    let mut g_list: *mut pg_sys::List = std::ptr::null_mut();
    for t in keys.iter().chain(ctx.aggregates.iter()) {
        g_list = pg_sys::lappend(g_list, (*t).cast());
    }
    (*g).targetList = g_list;
    let entry = pg_sys::list_nth((*top).rtable, g_rt - 1) as *mut pg_sys::RangeTblEntry;
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    for t in keys.iter().chain(ctx.aggregates.iter()) {
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup((**t).resname)).cast());
    }
    (*(*entry).eref).colnames = names;
    (*top).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(g_rt).cast()), std::ptr::null_mut());
    (*top).targetList = list;
    (*top).windowClause = pg_sys::copyObjectImpl((*q).windowClause.cast()).cast();
    (*top).hasWindowFuncs = true;
    (*top).sortClause = pg_sys::copyObjectImpl((*q).sortClause.cast()).cast();
    (*top).distinctClause = pg_sys::copyObjectImpl((*q).distinctClause.cast()).cast();
    (*top).hasDistinctOn = (*q).hasDistinctOn;
    (*top).limitCount = (*q).limitCount;
    (*top).limitOffset = (*q).limitOffset;
    top
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

//! WITH RECURSIVE: a recursive CTE is one component, kept by an internal
//! view computed again when a table it reads changes (see
//! `delta::recompute`). A query that is just such a CTE (`SELECT ... FROM
//! reach`) is that component itself; in any other query, each reference to
//! a recursive CTE becomes a sub-query `WITH RECURSIVE ... SELECT * FROM
//! reach`, which becomes the internal view.

use super::sublinks::{new_select, range_table_ref};
use crate::pg;
use pgrx::pg_sys;

/// The recursive CTE a range table entry of `q` reads, if any.
unsafe fn recursive_cte(q: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> bool {
    if (*rte).rtekind != pg_sys::RTEKind::RTE_CTE || (*rte).ctelevelsup != 0 || (*rte).self_reference {
        return false;
    }
    let name = pg::cstr((*rte).ctename);
    pg::list::<pg_sys::CommonTableExpr>((*q).cteList).into_iter().any(|c| pg::cstr((*c).ctename) == name && (*c).cterecursive)
}

/// Whether `q` is one recursive component: a plain projection of a recursive CTE.
pub(super) unsafe fn is_component(q: *mut pg_sys::Query) -> bool {
    let from: Vec<*mut pg_sys::Node> = pg::list((*(*q).jointree).fromlist);
    (*q).hasRecursive
        && from.len() == 1
        && pg::is_a(from[0], pg_sys::NodeTag::T_RangeTblRef)
        && recursive_cte(q, pg_sys::list_nth((*q).rtable, (*(from[0] as *mut pg_sys::RangeTblRef)).rtindex - 1).cast())
        && (*(*q).jointree).quals.is_null()
        && !(*q).hasAggs
        && (*q).groupClause.is_null()
        && (*q).havingQual.is_null()
        && !(*q).hasWindowFuncs
        && (*q).distinctClause.is_null()
        && (*q).limitCount.is_null()
        && (*q).limitOffset.is_null()
        && !(*q).hasSubLinks
        && (*q).setOperations.is_null()
}

/// In a query that is not one component, make every reference to a
/// recursive CTE in its FROM a sub-query holding the CTEs and `SELECT * FROM` it.
pub(super) unsafe fn components_as_subqueries(q: *mut pg_sys::Query) {
    if !(*q).hasRecursive || is_component(q) {
        return;
    }
    for rte in pg::list::<pg_sys::RangeTblEntry>((*q).rtable) {
        if !recursive_cte(q, rte) {
            continue;
        }
        let c = new_select();
        (*c).cteList = pg_sys::copyObjectImpl((*q).cteList.cast()).cast();
        (*c).hasRecursive = true;
        let cte_ref = pg_sys::copyObjectImpl(rte.cast()) as *mut pg_sys::RangeTblEntry;
        (*c).rtable = pg_sys::lappend(std::ptr::null_mut(), cte_ref.cast());
        (*c).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(1).cast()), std::ptr::null_mut());
        let names: Vec<*mut pg_sys::Node> = pg::list((*(*cte_ref).eref).colnames);
        let types: Vec<pg_sys::Oid> =
            (0..pg_sys::list_length((*cte_ref).coltypes)).map(|i| pg_sys::list_nth_oid((*cte_ref).coltypes, i)).collect();
        let typmods: Vec<i32> =
            (0..pg_sys::list_length((*cte_ref).coltypmods)).map(|i| pg_sys::list_nth_int((*cte_ref).coltypmods, i)).collect();
        let colls: Vec<pg_sys::Oid> =
            (0..pg_sys::list_length((*cte_ref).colcollations)).map(|i| pg_sys::list_nth_oid((*cte_ref).colcollations, i)).collect();
        let mut targets: *mut pg_sys::List = std::ptr::null_mut();
        for (i, name) in names.iter().enumerate() {
            let var = pg_sys::makeVar(1, (i + 1) as i16, types[i], typmods[i], colls[i], 0);
            let name = pg_sys::pstrdup((*(*name as *mut pg_sys::String)).sval);
            targets = pg_sys::lappend(targets, pg_sys::makeTargetEntry(var.cast(), (i + 1) as i16, name, false).cast());
        }
        (*c).targetList = targets;
        // The reference becomes that sub-query (its alias and columns kept).
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = c;
        (*rte).ctename = std::ptr::null_mut();
        (*rte).ctelevelsup = 0;
        (*rte).coltypes = std::ptr::null_mut();
        (*rte).coltypmods = std::ptr::null_mut();
        (*rte).colcollations = std::ptr::null_mut();
    }
}

/// Every table a query reads, at any depth (a recursive CTE's included).
pub(super) unsafe fn tables_read(q: *mut pg_sys::Query) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    tables_walker(q.cast(), (&mut out as *mut Vec<u32>).cast());
    out
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn tables_walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_RangeTblEntry) {
        let rte = node as *mut pg_sys::RangeTblEntry;
        // (A stored view's query also lists the view itself, as OLD and NEW: not a table.)
        if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && pg_sys::get_rel_relkind((*rte).relid) as u8 == pg_sys::RELKIND_RELATION {
            let out = &mut *(ctx as *mut Vec<u32>);
            if !out.contains(&(*rte).relid.to_u32()) {
                out.push((*rte).relid.to_u32());
            }
        }
        return false;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Query) {
        return super::flatten::query_tree_walker(node.cast(), Some(tables_walker), ctx, pg_sys::QTW_EXAMINE_RTES_BEFORE as i32);
    }
    pg_sys::expression_tree_walker(node, Some(tables_walker), ctx)
}

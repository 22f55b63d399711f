//! ORDER BY ... LIMIT at the top of a view's query: the query without its
//! ordering and limit moves into a sub-query, which becomes an internal
//! view (kept whole, incrementally), and the view's query becomes `SELECT
//! <its columns> FROM <that> ORDER BY ... LIMIT ...` (see `delta::topk`).

use super::sublinks::{add_subquery, new_select, range_table_ref};
use crate::pg;
use pgrx::pg_sys;

/// `q` with its LIMIT / OFFSET over a sub-query holding the rest, or `q`
/// itself when it has none.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn limit_over_subquery(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    if (*q).limitCount.is_null() && (*q).limitOffset.is_null() {
        return q;
    }
    let inner = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    (*inner).limitCount = std::ptr::null_mut();
    (*inner).limitOffset = std::ptr::null_mut();
    (*inner).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
    (*inner).sortClause = std::ptr::null_mut();
    // Expressions ordered by but not selected become columns of the inner query.
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*inner).targetList);
    for t in &targets {
        if (**t).resjunk {
            (**t).resjunk = false;
            let name = std::ffi::CString::new(format!("__tide_order_{}", (**t).resno)).expect("no NUL");
            (**t).resname = pg_sys::pstrdup(name.as_ptr());
        }
    }
    let w = new_select();
    let rt = add_subquery(w, inner, "top");
    // The internal view keeps the rows of the inner query: never pull it up.
    (*(pg_sys::list_nth((*w).rtable, rt - 1) as *mut pg_sys::RangeTblEntry)).security_barrier = true;
    (*w).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(rt).cast()), std::ptr::null_mut());
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
        let e = (*t).expr.cast();
        let var = pg_sys::makeVar(rt, (*t).resno, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        let te = pg_sys::makeTargetEntry(var.cast(), (*t).resno, (*t).resname, (*t).resjunk);
        (*te).ressortgroupref = (*t).ressortgroupref;
        list = pg_sys::lappend(list, te.cast());
    }
    (*w).targetList = list;
    (*w).sortClause = pg_sys::copyObjectImpl((*q).sortClause.cast()).cast();
    (*w).limitCount = (*q).limitCount;
    (*w).limitOffset = (*q).limitOffset;
    (*w).limitOption = (*q).limitOption;
    w
}

//! GROUPING SETS, ROLLUP and CUBE: the query becomes the UNION ALL of one
//! GROUP BY query per grouping set, in which the grouping columns outside
//! the set read as NULL and GROUPING(...) is a constant. Each of those is
//! then a branch of a set operation (see `setop`), an internal view
//! maintained as any GROUP BY query.
//!
//! DISTINCT over GROUP BY: the grouped query is a sub-query (an internal
//! view), the DISTINCT over its rows (see `distinct_over_groups`).

use super::sublinks::{add_subquery, new_select, over_rows, range_table_ref, wrap_distinct};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::{c_int, c_void};

unsafe extern "C-unwind" {
    // parser/parse_agg.h, which pgrx does not bind.
    fn expand_grouping_sets(grouping_sets: *mut pg_sys::List, group_distinct: bool, limit: c_int) -> *mut pg_sys::List;
}

/// `SELECT DISTINCT * FROM (<q without DISTINCT>) s` for a query with
/// DISTINCT (not DISTINCT ON) over GROUP BY or aggregates, or over a select
/// list with sub-queries (the rows before DISTINCT are then an internal
/// view that maintains those), or `q` itself.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn distinct_over_groups(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).groupingSets.is_null();
    let sublinks = (*q).hasSubLinks
        && pg::list::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .any(|t| super::to_ir::contains((*t).expr.cast(), pg_sys::NodeTag::T_SubLink));
    if !(grouped || sublinks)
        || (*q).distinctClause.is_null()
        || (*q).hasDistinctOn
        || !(*q).limitCount.is_null()
        || !(*q).limitOffset.is_null()
    {
        return q;
    }
    let g = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    (*g).distinctClause = std::ptr::null_mut();
    // (ORDER BY without LIMIT does not change the rows.)
    (*g).sortClause = std::ptr::null_mut();
    wrap_distinct(g)
}

/// `q` as the UNION ALL of its grouping sets, or `q` itself without any.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn as_union(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    if (*q).groupingSets.is_null() {
        return q;
    }
    let sets = pg_sys::ffi::pg_guard_ffi_boundary(|| expand_grouping_sets((*q).groupingSets, (*q).groupDistinct, -1));
    if !(*q).hasAggs && pg::list::<pg_sys::List>(sets).iter().any(|s| s.is_null()) {
        // An empty set without aggregates is one row however many the input
        // has, which no branch query says: left as it is (and refused).
        return q;
    }
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let top = new_select();
    let mut tree: *mut pg_sys::Node = std::ptr::null_mut();
    let mut first_branch: *mut pg_sys::Query = std::ptr::null_mut();
    for set in pg::list::<pg_sys::List>(sets) {
        let refs: Vec<pg_sys::Index> = (0..pg_sys::list_length(set)).map(|i| pg_sys::list_nth_int(set, i) as pg_sys::Index).collect();
        let b = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
        (*b).groupingSets = std::ptr::null_mut();
        (*b).groupDistinct = false;
        (*b).sortClause = std::ptr::null_mut();
        let mut group: *mut pg_sys::List = std::ptr::null_mut();
        for g in pg::list::<pg_sys::SortGroupClause>((*b).groupClause) {
            if refs.contains(&(*g).tleSortGroupRef) {
                group = pg_sys::lappend(group, g.cast());
            }
        }
        (*b).groupClause = group;
        // The grouping columns outside this set, which read as NULL.
        let mut ctx = Absent { absent: Vec::new(), refs: refs.clone(), targets: targets.clone() };
        for t in &targets {
            if (**t).ressortgroupref != 0 && !refs.contains(&(**t).ressortgroupref) && is_grouping_column(q, (**t).ressortgroupref) {
                ctx.absent.push((**t).expr.cast());
            }
        }
        let c = (&mut ctx as *mut Absent).cast();
        for t in pg::list::<pg_sys::TargetEntry>((*b).targetList) {
            (*t).expr = null_absent((*t).expr.cast(), c).cast();
        }
        (*b).havingQual = null_absent((*b).havingQual, c);
        let rt = add_subquery(top, b, "grouping_set");
        if first_branch.is_null() {
            first_branch = b;
            tree = range_table_ref(rt).cast();
        } else {
            tree = union_all(tree, range_table_ref(rt).cast(), first_branch).cast();
        }
    }
    if pg_sys::list_length((*top).rtable) == 1 {
        // One set: the branch is the query.
        return first_branch;
    }
    (*top).setOperations = tree;
    // As the parser leaves a set operation: an empty FROM.
    (*top).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), std::ptr::null_mut());
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for t in targets.iter().filter(|t| !(***t).resjunk) {
        let e = (**t).expr.cast();
        let var = pg_sys::makeVar(1, (**t).resno, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        list = pg_sys::lappend(list, pg_sys::makeTargetEntry(var.cast(), (**t).resno, (**t).resname, false).cast());
    }
    (*top).targetList = list;
    top
}

unsafe fn is_grouping_column(q: *mut pg_sys::Query, sortgroupref: pg_sys::Index) -> bool {
    pg::list::<pg_sys::SortGroupClause>((*q).groupClause).iter().any(|g| (**g).tleSortGroupRef == sortgroupref)
}

/// `UNION ALL` of two set-operation items, typed like `branch`'s columns.
unsafe fn union_all(l: *mut pg_sys::Node, r: *mut pg_sys::Node, branch: *mut pg_sys::Query) -> *mut pg_sys::SetOperationStmt {
    let s = pg_sys::palloc0(std::mem::size_of::<pg_sys::SetOperationStmt>()) as *mut pg_sys::SetOperationStmt;
    (*s).type_ = pg_sys::NodeTag::T_SetOperationStmt;
    (*s).op = pg_sys::SetOperation::SETOP_UNION;
    (*s).all = true;
    (*s).larg = l;
    (*s).rarg = r;
    for t in pg::list::<pg_sys::TargetEntry>((*branch).targetList).into_iter().filter(|t| !(**t).resjunk) {
        let e = (*t).expr.cast();
        (*s).colTypes = pg_sys::lappend_oid((*s).colTypes, pg_sys::exprType(e));
        (*s).colTypmods = pg_sys::lappend_int((*s).colTypmods, pg_sys::exprTypmod(e));
        (*s).colCollations = pg_sys::lappend_oid((*s).colCollations, pg_sys::exprCollation(e));
    }
    s
}

struct Absent {
    absent: Vec<*mut pg_sys::Node>,
    /// The grouping set's columns (their sort/group references).
    refs: Vec<pg_sys::Index>,
    targets: Vec<*mut pg_sys::TargetEntry>,
}

/// Grouping columns outside the set become NULL (not inside aggregates);
/// GROUPING(...) becomes its value for this set.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn null_absent(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &*(ctx as *mut Absent);
    if pg::is_a(node, pg_sys::NodeTag::T_Aggref) {
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_GroupingFunc) {
        // Bit i (from the right, last argument lowest) is set when argument i is not grouped.
        let g = node as *mut pg_sys::GroupingFunc;
        let mut value: i32 = 0;
        for arg in pg::list::<pg_sys::Node>((*g).args) {
            let grouped = c.targets.iter().any(|t| pg_sys::equal((**t).expr.cast(), arg.cast()) && c.refs.contains(&(**t).ressortgroupref));
            value = (value << 1) | i32::from(!grouped);
        }
        return pg_sys::makeConst(pg_sys::INT4OID, -1, pg_sys::InvalidOid, 4, pg_sys::Datum::from(value), false, true).cast();
    }
    if c.absent.iter().any(|a| pg_sys::equal((*a).cast(), node.cast())) {
        return pg_sys::makeNullConst(pg_sys::exprType(node), pg_sys::exprTypmod(node), pg_sys::exprCollation(node)).cast();
    }
    pg::mutate_children(node, null_absent, ctx)
}

/// DISTINCT ON over GROUP BY or window functions: the rows under it (the
/// groups, or the rows with their windows) are a sub-query, an internal
/// view, and the DISTINCT ON picks among its rows, recomputed per key a
/// change touches as any DISTINCT ON; `q` itself otherwise.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn distinct_on_over_rows(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).groupingSets.is_null();
    if !(*q).hasDistinctOn || !(grouped || (*q).hasWindowFuncs) || !(*q).limitCount.is_null() || !(*q).limitOffset.is_null() {
        return q;
    }
    // G: the query without DISTINCT ON and ORDER BY, every column shown.
    let g = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    (*g).distinctClause = std::ptr::null_mut();
    (*g).hasDistinctOn = false;
    (*g).sortClause = std::ptr::null_mut();
    let (top, _) = over_rows(q, g, "rows", "__tide_col");
    (*top).distinctClause = pg_sys::copyObjectImpl((*q).distinctClause.cast()).cast();
    (*top).hasDistinctOn = true;
    (*top).sortClause = pg_sys::copyObjectImpl((*q).sortClause.cast()).cast();
    top
}

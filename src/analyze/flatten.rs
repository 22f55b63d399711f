//! Pull simple sub-queries up into the query that uses them: sub-queries in
//! FROM, non-recursive CTEs and (after the rewriter) views used as sources.
//! A select-project-join sub-query is then just more base tables and
//! predicates of the join block, maintained by the same delta rules. The
//! sub-queries left in FROM afterwards (those that aggregate, say) stand on
//! their own: `standalone_subqueries` finds them, and pg_tide maintains each
//! as a view of its own that the query then reads as a table.
//!
//! This is what PostgreSQL's planner does in pull_up_subqueries, done with
//! the rewriter's own tools: OffsetVarNodes shifts the sub-query's range
//! table indexes, ReplaceVarsFromTargetList replaces the parent's references
//! to the sub-query's columns with the sub-query's expressions.

use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_int;

// rewrite/rewriteManip.h, which pgrx does not bind. Called only through
// pg_guard_ffi_boundary, so an ERROR inside becomes a Rust panic.
unsafe extern "C-unwind" {
    fn OffsetVarNodes(node: *mut pg_sys::Node, offset: c_int, sublevels_up: c_int);
    fn ReplaceVarsFromTargetList(
        node: *mut pg_sys::Node,
        target_varno: c_int,
        sublevels_up: c_int,
        target_rte: *mut pg_sys::RangeTblEntry,
        targetlist: *mut pg_sys::List,
        nomatch_option: c_int,
        nomatch_varno: c_int,
        outer_has_sublinks: *mut bool,
    ) -> *mut pg_sys::Node;
}

/// REPLACEVARS_REPORT_ERROR: a reference to a column the sub-query lacks is a bug.
const REPLACEVARS_REPORT_ERROR: c_int = 0;

/// Pull up every simple sub-query of `q`'s join tree, repeatedly (a pulled-up
/// sub-query may contain more). Returns the new Query.
///
/// # Safety
/// `q` must be an analyzed (and rewritten) SELECT Query in the current memory context.
pub unsafe fn pull_up_subqueries(mut q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    loop {
        let mut pulled = false;
        let n = pg_sys::list_length((*q).rtable);
        for rtindex in 1..=n {
            // (Under an outer join it stays a sub-query: an internal view.
            // Its FROM and WHERE cannot take its place as a join's arm,
            // and the join's alias variables name it.)
            if !referenced_in_join_tree((*q).jointree.cast(), rtindex) || under_outer_join((*q).jointree.cast(), rtindex, false) {
                continue;
            }
            let rte = pg_sys::list_nth((*q).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
            // (A security barrier is also what marks the rows under a top-K, see `topk`.)
            // A LATERAL one refers to the items before it: pulled up, those
            // references are columns of this level, its WHERE a join condition.
            if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY || !is_simple((*rte).subquery, (*rte).lateral) || (*rte).security_barrier {
                continue;
            }
            q = pull_up(q, rtindex, rte);
            pulled = true;
            break;
        }
        if !pulled {
            return q;
        }
    }
}

/// Replace every reference to a non-recursive CTE, at any depth, by a
/// sub-query holding a copy of the CTE's query, as the planner does for CTEs
/// it inlines (for a SELECT of immutable expressions the rows are the same,
/// MATERIALIZED or not). Afterwards no sub-query refers to a CTE of an
/// enclosing query, so each stands on its own; WITH lists without a
/// recursive CTE are emptied.
///
/// # Safety
/// `q` must be an analyzed (and rewritten) Query in the current memory context.
pub unsafe fn inline_ctes(q: *mut pg_sys::Query) {
    let mut stack: Vec<*mut pg_sys::Query> = Vec::new();
    inline_in_query(q, &mut stack);
}

unsafe fn inline_in_query(q: *mut pg_sys::Query, stack: &mut Vec<*mut pg_sys::Query>) {
    stack.push(q);
    for rte in pg::list::<pg_sys::RangeTblEntry>((*q).rtable) {
        if (*rte).rtekind == pg_sys::RTEKind::RTE_CTE && !(*rte).self_reference {
            let up = (*rte).ctelevelsup as usize;
            let owner = stack[stack.len() - 1 - up];
            let name = pg::cstr((*rte).ctename);
            let cte = pg::list::<pg_sys::CommonTableExpr>((*owner).cteList).into_iter().find(|c| pg::cstr((**c).ctename) == name);
            if let Some(cte) = cte.filter(|c| !(**c).cterecursive) {
                let sub = pg_sys::copyObjectImpl((*cte).ctequery.cast()) as *mut pg_sys::Query;
                if up > 0 {
                    // The copy sits `up` levels deeper than the CTE did: its
                    // references to enclosing levels reach that much further.
                    pg::increment_var_sublevels_up(sub.cast(), up as i32, 1);
                }
                (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
                (*rte).subquery = sub;
                // Column names the CTE gave (`WITH r (a, b) AS ...`) become
                // the item's column aliases, which ruleutils then writes out.
                if !(*cte).aliascolnames.is_null() {
                    if (*rte).alias.is_null() {
                        (*rte).alias = pg_sys::makeAlias((*cte).ctename, std::ptr::null_mut());
                    }
                    if (*(*rte).alias).colnames.is_null() {
                        (*(*rte).alias).colnames = pg_sys::copyObjectImpl((*cte).aliascolnames.cast()).cast();
                    }
                }
                // ctename stays: tide.explain shows the item as a CTE.
                (*rte).ctelevelsup = 0;
                (*rte).coltypes = std::ptr::null_mut();
                (*rte).coltypmods = std::ptr::null_mut();
                (*rte).colcollations = std::ptr::null_mut();
            }
        }
        if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY && !(*rte).subquery.is_null() {
            inline_in_query((*rte).subquery, stack);
        }
    }
    // Sub-queries of expressions (EXISTS, IN, scalar), found without
    // descending into the range table (done above) or the CTEs themselves.
    let flags = (pg_sys::QTW_IGNORE_RANGE_TABLE | pg_sys::QTW_IGNORE_CTE_SUBQUERIES) as i32;
    let ctx = (stack as *mut Vec<*mut pg_sys::Query>).cast();
    query_tree_walker(q, Some(inline_in_sublinks), ctx, flags);
    stack.pop();
    if !(*q).hasRecursive {
        (*q).cteList = std::ptr::null_mut();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn inline_in_sublinks(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Query) {
        inline_in_query(node.cast(), &mut *(ctx as *mut Vec<*mut pg_sys::Query>));
        return false;
    }
    pg_sys::expression_tree_walker(node, Some(inline_in_sublinks), ctx)
}

pub(super) unsafe fn query_tree_walker(
    q: *mut pg_sys::Query,
    walker: Option<unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut std::ffi::c_void) -> bool>,
    ctx: *mut std::ffi::c_void,
    flags: i32,
) -> bool {
    #[cfg(feature = "pg15")]
    {
        pg_sys::query_tree_walker(q, walker, ctx, flags)
    }
    #[cfg(not(feature = "pg15"))]
    {
        pg_sys::query_tree_walker_impl(q, walker, ctx, flags)
    }
}

/// The range table indexes of the sub-queries in `q`'s FROM that stand on
/// their own (they refer to nothing outside themselves): after
/// `pull_up_subqueries`, those that could not be pulled up. In order.
///
/// # Safety
/// `q` must be a Query returned by `pull_up_subqueries`.
pub unsafe fn standalone_subqueries(q: *mut pg_sys::Query) -> Vec<i32> {
    let n = pg_sys::list_length((*q).rtable);
    (1..=n)
        .filter(|&rtindex| {
            let rte = pg_sys::list_nth((*q).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
            referenced_in_join_tree((*q).jointree.cast(), rtindex)
                && (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY
                && is_standalone((*rte).subquery)
        })
        .collect()
}

/// A SELECT that refers to no enclosing query (neither LATERAL nor correlated).
pub unsafe fn is_standalone(sub: *mut pg_sys::Query) -> bool {
    !sub.is_null() && (*sub).commandType == pg_sys::CmdType::CMD_SELECT && !pg_sys::contain_vars_of_level(sub.cast(), 1)
}

/// Make the sub-query at `rtindex` a reference to the table `relid` (which
/// has the sub-query's output columns, in order).
///
/// # Safety
/// `q` must be a Query and `rtindex` one of its sub-query range table entries.
pub unsafe fn replace_with_table(q: *mut pg_sys::Query, rtindex: i32, relid: pg_sys::Oid) {
    let rte = pg_sys::list_nth((*q).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
    // Columns go by the table's own names (the plan reads them so), not
    // by aliases the query gave the sub-query's columns.
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    for (name, _) in pg::columns(relid) {
        let name = std::ffi::CString::new(name).expect("no NUL in a column name");
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(name.as_ptr())).cast());
    }
    if !(*rte).alias.is_null() {
        (*(*rte).alias).colnames = std::ptr::null_mut();
    }
    (*(*rte).eref).colnames = names;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).subquery = std::ptr::null_mut();
    (*rte).relid = relid;
    (*rte).relkind = pg_sys::RELKIND_RELATION as std::ffi::c_char;
    (*rte).rellockmode = pg_sys::AccessShareLock as i32;
    (*rte).inh = true;
    (*rte).ctename = std::ptr::null_mut();
    (*rte).lateral = false;
}

/// A sub-query that is a plain select-project-join (what the parent's join
/// block can absorb): no aggregation, DISTINCT, ordering with LIMIT, set
/// operation, window, sub-link, set-returning function, CTE or row lock, and
/// no reference to an outer query unless it is LATERAL (to the items before
/// it in the parent).
unsafe fn is_simple(sub: *mut pg_sys::Query, lateral: bool) -> bool {
    !sub.is_null()
        && (*sub).commandType == pg_sys::CmdType::CMD_SELECT
        && (*sub).setOperations.is_null()
        && !(*sub).hasAggs
        && (*sub).groupClause.is_null()
        && (*sub).groupingSets.is_null()
        && (*sub).havingQual.is_null()
        && !(*sub).hasWindowFuncs
        && (*sub).distinctClause.is_null()
        && (*sub).limitCount.is_null()
        && (*sub).limitOffset.is_null()
        && !(*sub).hasSubLinks
        && !(*sub).hasTargetSRFs
        && (*sub).cteList.is_null()
        && (*sub).rowMarks.is_null()
        && (lateral || !pg_sys::contain_vars_of_level(sub.cast(), 1))
        && !(*(*sub).jointree).fromlist.is_null()
}

unsafe fn referenced_in_join_tree(node: *mut pg_sys::Node, rtindex: i32) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return false;
    }
    match (*node).type_ {
        T_RangeTblRef => (*(node as *mut pg_sys::RangeTblRef)).rtindex == rtindex,
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            referenced_in_join_tree((*j).larg, rtindex) || referenced_in_join_tree((*j).rarg, rtindex)
        }
        T_FromExpr => {
            pg::list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist).into_iter().any(|n| referenced_in_join_tree(n, rtindex))
        }
        _ => false,
    }
}

/// Whether range table entry `rtindex` is (inside) an arm of an outer join.
unsafe fn under_outer_join(node: *mut pg_sys::Node, rtindex: i32, outer: bool) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return false;
    }
    match (*node).type_ {
        T_RangeTblRef => outer && (*(node as *mut pg_sys::RangeTblRef)).rtindex == rtindex,
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            let outer = outer || (*j).jointype != pg_sys::JoinType::JOIN_INNER;
            under_outer_join((*j).larg, rtindex, outer) || under_outer_join((*j).rarg, rtindex, outer)
        }
        T_FromExpr => {
            pg::list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist).into_iter().any(|n| under_outer_join(n, rtindex, outer))
        }
        _ => false,
    }
}

/// Replace the sub-query at `rtindex` by its own FROM items and WHERE.
unsafe fn pull_up(q: *mut pg_sys::Query, rtindex: i32, rte: *mut pg_sys::RangeTblEntry) -> *mut pg_sys::Query {
    let sub = pg_sys::copyObjectImpl((*rte).subquery.cast()) as *mut pg_sys::Query;
    let offset = pg_sys::list_length((*q).rtable);
    // The sub-query's range table goes after the parent's.
    pg_sys::ffi::pg_guard_ffi_boundary(|| OffsetVarNodes(sub.cast(), offset, 0));
    // Then its references to the parent (CTEs; the items before a LATERAL
    // one) come one level closer, keeping the parent's range table indexes.
    pg::increment_var_sublevels_up(sub.cast(), -1, 1);
    (*q).rtable = pg_sys::list_concat((*q).rtable, (*sub).rtable);
    // The parent's references to the sub-query's columns become its expressions.
    let mut has_sublinks = false;
    let q = pg_sys::ffi::pg_guard_ffi_boundary(|| {
        ReplaceVarsFromTargetList(q.cast(), rtindex, 0, rte, (*sub).targetList, REPLACEVARS_REPORT_ERROR, 0, &mut has_sublinks)
    }) as *mut pg_sys::Query;
    // The sub-query's place in the join tree takes its FROM and WHERE.
    replace_in_join_tree((*q).jointree.cast(), rtindex, (*sub).jointree.cast());
    q
}

unsafe fn replace_in_join_tree(node: *mut pg_sys::Node, rtindex: i32, with: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    let is_target = |n: *mut pg_sys::Node| pg::is_a(n, T_RangeTblRef) && (*(n as *mut pg_sys::RangeTblRef)).rtindex == rtindex;
    // A FROM list holds no FROM list, nor an inner join's arm, for ruleutils
    // (which prints the query for windows, DISTINCT ON and LIMIT): the
    // sub-query's items go in its place, its WHERE joins the conditions.
    let and = |a: *mut pg_sys::Node, b: *mut pg_sys::Node| -> *mut pg_sys::Node {
        match (a.is_null(), b.is_null()) {
            (true, _) => b,
            (_, true) => a,
            _ => pg_sys::make_and_qual(a, b),
        }
    };
    let from = pg::is_a(with, T_FromExpr).then_some(with as *mut pg_sys::FromExpr);
    match (*node).type_ {
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            let single = from.filter(|f| pg_sys::list_length((**f).fromlist) == 1 && (*j).jointype == pg_sys::JoinType::JOIN_INNER);
            let arm = |f: *mut pg_sys::FromExpr| pg_sys::list_nth((*f).fromlist, 0) as *mut pg_sys::Node;
            for side in [&mut (*j).larg, &mut (*j).rarg] {
                if is_target(*side) {
                    match single {
                        Some(f) => {
                            *side = arm(f);
                            (*j).quals = and((*j).quals, (*f).quals);
                        }
                        None => *side = with,
                    }
                } else {
                    replace_in_join_tree(*side, rtindex, with);
                }
            }
        }
        T_FromExpr => {
            let f = node as *mut pg_sys::FromExpr;
            let mut list: *mut pg_sys::List = std::ptr::null_mut();
            for item in pg::list::<pg_sys::Node>((*f).fromlist) {
                if !is_target(item) {
                    replace_in_join_tree(item, rtindex, with);
                    list = pg_sys::lappend(list, item.cast());
                } else if let Some(w) = from {
                    for inner in pg::list::<pg_sys::Node>((*w).fromlist) {
                        list = pg_sys::lappend(list, inner.cast());
                    }
                    (*f).quals = and((*f).quals, (*w).quals);
                } else {
                    list = pg_sys::lappend(list, with.cast());
                }
            }
            (*f).fromlist = list;
        }
        _ => {}
    }
}

//! Outer joins, as the delta rules take them. A LEFT or RIGHT join that
//! pads one table is a lookup (`lookup_side`, `delta::plan::Lookup`).
//! Otherwise `L ⟕ R ON θ` is the inner join, plus L's rows padded with
//! NULLs, minus the padded rows of L that have a match. "Has a match" is a join with K, the distinct join keys of
//! R, which pg_tide keeps as an internal view: with one K row per key, the
//! join matches each L row at most once.
//!
//! When R is a grouped sub-query joined on its GROUP BY columns (and no
//! condition on R alone), R's rows are distinct on the keys already: the
//! internal view that keeps R serves as K (see `grouped_keys_side`).
//!
//! That holds when θ is a conjunction of equalities between an expression of
//! L and one of R (the keys), conditions on R alone (they filter K) and
//! conditions on L alone. `split` sorts θ's conjuncts so; other conditions
//! are refused, but for a lookup.

use super::to_ir::{collect, flatten_join_aliases};
use crate::pg;
use pgrx::pg_sys;

/// θ's conjuncts, sorted for one padded side ("outer": the side whose rows
/// are kept; "keys": the side whose keys find a match).
pub(super) struct Split {
    /// (expression over the outer side, expression over the keys side, the
    /// equality operator between them)
    pub equalities: Vec<(*mut pg_sys::Node, *mut pg_sys::Node, pg_sys::Oid)>,
    pub keys_only: Vec<*mut pg_sys::Node>,
    pub outer_only: Vec<*mut pg_sys::Node>,
    /// Conditions on both sides that are not equalities of the kind above.
    pub mixed: Vec<*mut pg_sys::Node>,
}

/// Drop what a query does above its join block (grouping, aggregates,
/// windows, DISTINCT, ORDER BY, LIMIT), for a copy whose target list the
/// caller sets: its rows are then those of its FROM and WHERE.
pub(super) unsafe fn only_join_block(q: *mut pg_sys::Query) {
    (*q).groupClause = std::ptr::null_mut();
    (*q).groupingSets = std::ptr::null_mut();
    (*q).havingQual = std::ptr::null_mut();
    (*q).hasAggs = false;
    (*q).hasWindowFuncs = false;
    (*q).windowClause = std::ptr::null_mut();
    (*q).distinctClause = std::ptr::null_mut();
    (*q).hasDistinctOn = false;
    (*q).sortClause = std::ptr::null_mut();
    (*q).limitCount = std::ptr::null_mut();
    (*q).limitOffset = std::ptr::null_mut();
    (*q).hasTargetSRFs = false;
}

/// The range table indexes under a join tree node.
pub(super) unsafe fn relations_under(node: *mut pg_sys::Node) -> Vec<i32> {
    use pg_sys::NodeTag::*;
    let mut out = Vec::new();
    match (*node).type_ {
        T_RangeTblRef => out.push((*(node as *mut pg_sys::RangeTblRef)).rtindex),
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            out.extend(relations_under((*j).larg));
            out.extend(relations_under((*j).rarg));
        }
        T_FromExpr => {
            for item in pg::list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist) {
                out.extend(relations_under(item));
            }
        }
        _ => {}
    }
    out
}

/// The range table indexes of the joins under a join tree node.
unsafe fn joins_under(node: *mut pg_sys::Node) -> Vec<i32> {
    use pg_sys::NodeTag::*;
    let mut out = Vec::new();
    match (*node).type_ {
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            out.push((*j).rtindex);
            out.extend(joins_under((*j).larg));
            out.extend(joins_under((*j).rarg));
        }
        T_FromExpr => {
            for item in pg::list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist) {
                out.extend(joins_under(item));
            }
        }
        _ => {}
    }
    out
}

/// The range table indexes of this level's columns in an expression.
unsafe fn varnos(q: *mut pg_sys::Query, expr: *mut pg_sys::Node) -> Vec<i32> {
    let mut found = Vec::new();
    collect(flatten_join_aliases(q, expr), pg_sys::NodeTag::T_Var, &mut found);
    let mut out: Vec<i32> =
        found.into_iter().map(|n| n as *mut pg_sys::Var).filter(|v| (**v).varlevelsup == 0).map(|v| (*v).varno).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The conjuncts of a condition (join aliases flattened).
unsafe fn conjuncts(q: *mut pg_sys::Query, quals: *mut pg_sys::Node) -> Vec<*mut pg_sys::Node> {
    if quals.is_null() {
        return Vec::new();
    }
    let flat = flatten_join_aliases(q, quals);
    pg::list::<pg_sys::Node>(pg_sys::make_ands_implicit(flat.cast()))
}

/// Sort `quals` for keeping the rows of `outer` (range table indexes) and
/// finding matches among `keys`; None when some conjunct is none of the
/// three kinds, or there is no equality at all.
pub(super) unsafe fn split(q: *mut pg_sys::Query, quals: *mut pg_sys::Node, outer: &[i32], keys: &[i32]) -> Option<Split> {
    sort_conjuncts(q, quals, outer, keys).filter(|s| s.mixed.is_empty() && !s.equalities.is_empty())
}

/// `split`, with the conjuncts of no kind in `mixed` (None only when the
/// keys side has a function or VALUES).
pub(super) unsafe fn sort_conjuncts(q: *mut pg_sys::Query, quals: *mut pg_sys::Node, outer: &[i32], keys: &[i32]) -> Option<Split> {
    // The padded side is replaced by a row of NULLs per table: functions
    // and VALUES there are not taken.
    let constant = |rt: &i32| {
        let rte = pg_sys::list_nth((*q).rtable, *rt - 1) as *mut pg_sys::RangeTblEntry;
        matches!((*rte).rtekind, pg_sys::RTEKind::RTE_FUNCTION | pg_sys::RTEKind::RTE_VALUES)
    };
    if keys.iter().any(constant) {
        return None;
    }
    let within = |vars: &[i32], side: &[i32]| vars.iter().all(|v| side.contains(v));
    let mut s = Split { equalities: Vec::new(), keys_only: Vec::new(), outer_only: Vec::new(), mixed: Vec::new() };
    for c in conjuncts(q, quals) {
        let vars = varnos(q, c);
        if pg::is_a(c, pg_sys::NodeTag::T_OpExpr) {
            let op = c as *mut pg_sys::OpExpr;
            let args: Vec<*mut pg_sys::Node> = pg::list((*op).args);
            if args.len() == 2 && pg_sys::op_mergejoinable((*op).opno, pg_sys::exprType(args[0])) {
                let (a, b) = (varnos(q, args[0]), varnos(q, args[1]));
                let one_each = !a.is_empty() && !b.is_empty();
                if one_each && within(&a, outer) && within(&b, keys) {
                    s.equalities.push((args[0], args[1], (*op).opno));
                    continue;
                }
                if one_each && within(&a, keys) && within(&b, outer) {
                    s.equalities.push((args[1], args[0], (*op).opno));
                    continue;
                }
            }
        }
        if !vars.is_empty() && within(&vars, keys) {
            s.keys_only.push(c);
        } else if within(&vars, outer) {
            s.outer_only.push(c);
        } else {
            s.mixed.push(c);
        }
    }
    Some(s)
}

/// The query of the internal view holding the distinct join keys of
/// `keys_side` (a join tree node of `q`) under `split`: `SELECT DISTINCT *
/// FROM (SELECT <key expressions> AS k1.. FROM <side> WHERE <keys-only
/// conditions>) keys`, deparsed with an empty search_path.
pub(super) unsafe fn keys_query(q: *mut pg_sys::Query, keys_side: *mut pg_sys::Node, split: &Split) -> String {
    let k = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let quals = if split.keys_only.is_empty() {
        std::ptr::null_mut()
    } else {
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        for c in &split.keys_only {
            list = pg_sys::lappend(list, pg_sys::copyObjectImpl((*c).cast()));
        }
        pg_sys::make_ands_explicit(list).cast()
    };
    let side = pg_sys::copyObjectImpl(keys_side.cast()) as *mut pg_sys::Node;
    (*k).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), side.cast()), quals);
    let mut targets: *mut pg_sys::List = std::ptr::null_mut();
    for (i, (_, key, _)) in split.equalities.iter().enumerate() {
        let name = std::ffi::CString::new(format!("k{}", i + 1)).expect("no NUL");
        let expr = pg_sys::copyObjectImpl((*key).cast()) as *mut pg_sys::Expr;
        targets = pg_sys::lappend(targets, pg_sys::makeTargetEntry(expr, (i + 1) as i16, pg_sys::pstrdup(name.as_ptr()), false).cast());
    }
    (*k).targetList = targets;
    only_join_block(k);
    // (Joins above the keys side are no longer in the join tree.)
    forget_absent_joins(k);
    format!("SELECT DISTINCT * FROM ({}) AS keys", super::deparse_without_search_path(k).trim())
}

/// When the keys side is a grouped sub-query joined on (a superset of) its
/// GROUP BY columns, with no condition on it alone, its rows are distinct
/// on the join keys already: the internal view that keeps it serves as K,
/// and no other is made. Its range table index, and its output column
/// (1-based) for each equality of `split`.
pub(super) unsafe fn grouped_keys_side(q: *mut pg_sys::Query, keys_side: *mut pg_sys::Node, split: &Split) -> Option<(i32, Vec<i16>)> {
    if !pg::is_a(keys_side, pg_sys::NodeTag::T_RangeTblRef) || !split.keys_only.is_empty() {
        return None;
    }
    let rt = (*(keys_side as *mut pg_sys::RangeTblRef)).rtindex;
    let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
    let sub = (*rte).subquery;
    if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY
        || !super::flatten::is_standalone(sub)
        || (*sub).groupClause.is_null()
        || !(*sub).groupingSets.is_null()
        || !(*sub).setOperations.is_null()
    {
        return None;
    }
    let mut columns = Vec::new();
    for (_, key, _) in &split.equalities {
        let v = flatten_join_aliases(q, *key);
        if !pg::is_a(v, pg_sys::NodeTag::T_Var) || (*(v as *mut pg_sys::Var)).varno != rt || (*(v as *mut pg_sys::Var)).varlevelsup != 0 {
            return None;
        }
        columns.push((*(v as *mut pg_sys::Var)).varattno);
    }
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*sub).targetList);
    let grouped = pg::list::<pg_sys::SortGroupClause>((*sub).groupClause)
        .into_iter()
        .all(|g| targets.iter().any(|t| (**t).ressortgroupref == (*g).tleSortGroupRef && !(**t).resjunk && columns.contains(&(**t).resno)));
    grouped.then_some((rt, columns))
}

/// Make the joins of `q`'s range table that its join tree no longer has
/// empty items: ruleutils expects every join of the range table in the tree.
pub(super) unsafe fn forget_absent_joins(q: *mut pg_sys::Query) {
    let kept = joins_under((*q).jointree.cast());
    for (i, rte) in pg::list::<pg_sys::RangeTblEntry>((*q).rtable).into_iter().enumerate() {
        if (*rte).rtekind == pg_sys::RTEKind::RTE_JOIN && !kept.contains(&(i as i32 + 1)) {
            (*rte).rtekind = pg_sys::RTEKind::RTE_RESULT;
            (*rte).joinaliasvars = std::ptr::null_mut();
            (*rte).joinleftcols = std::ptr::null_mut();
            (*rte).joinrightcols = std::ptr::null_mut();
        }
    }
}

/// A side of an outer join whose keys the plan needs.
pub(super) struct KeysNeeded {
    pub join: *mut pg_sys::JoinExpr,
    pub keys_side: *mut pg_sys::Node,
    /// None when the condition does not split (refused by `delta::maintenance`).
    pub split: Option<Split>,
}

/// For each side an outer join of `q`'s join tree pads, in a fixed order
/// (pre-order; for a FULL join the right side's keys, then the left's).
pub(super) unsafe fn keys_needed(q: *mut pg_sys::Query) -> Vec<KeysNeeded> {
    let mut out = Vec::new();
    visit(q, (*q).jointree.cast(), &mut out);
    out
}

unsafe fn visit(q: *mut pg_sys::Query, node: *mut pg_sys::Node, out: &mut Vec<KeysNeeded>) {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return;
    }
    match (*node).type_ {
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            let sides = if lookup_side(q, j).is_some() { vec![] } else { padded_sides(j) };
            for (outer, keys) in sides {
                let split = split(q, (*j).quals, &relations_under(outer), &relations_under(keys));
                out.push(KeysNeeded { join: j, keys_side: keys, split });
            }
            visit(q, (*j).larg, out);
            visit(q, (*j).rarg, out);
        }
        T_FromExpr => {
            for item in pg::list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist) {
                visit(q, item, out);
            }
        }
        _ => {}
    }
}

/// (kept side, keys side) for each side an outer join pads: LEFT keeps the
/// left side's rows, RIGHT the right's, FULL both.
pub(super) unsafe fn padded_sides(j: *mut pg_sys::JoinExpr) -> Vec<(*mut pg_sys::Node, *mut pg_sys::Node)> {
    match (*j).jointype {
        pg_sys::JoinType::JOIN_LEFT => vec![((*j).larg, (*j).rarg)],
        pg_sys::JoinType::JOIN_RIGHT => vec![((*j).rarg, (*j).larg)],
        pg_sys::JoinType::JOIN_FULL => vec![((*j).larg, (*j).rarg), ((*j).rarg, (*j).larg)],
        _ => vec![],
    }
}

/// For a LEFT or RIGHT join whose padded side is one table (or a sub-query
/// kept as an internal view's table), on any condition: the kept side, and
/// the table's range table index. Such a join is a lookup
/// (see `delta::plan::Lookup`): no keys' internal view, no extra terms.
pub(super) unsafe fn lookup_side(q: *mut pg_sys::Query, j: *mut pg_sys::JoinExpr) -> Option<(*mut pg_sys::Node, i32)> {
    let (kept, padded) = match (*j).jointype {
        pg_sys::JoinType::JOIN_LEFT => ((*j).larg, (*j).rarg),
        pg_sys::JoinType::JOIN_RIGHT => ((*j).rarg, (*j).larg),
        _ => return None,
    };
    if !pg::is_a(padded, pg_sys::NodeTag::T_RangeTblRef) {
        return None;
    }
    let rt = (*(padded as *mut pg_sys::RangeTblRef)).rtindex;
    let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
    let table = match (*rte).rtekind {
        pg_sys::RTEKind::RTE_RELATION => true,
        pg_sys::RTEKind::RTE_SUBQUERY => super::flatten::is_standalone((*rte).subquery),
        _ => false,
    };
    table.then_some((kept, rt))
}

//! Row-level security. PostgreSQL's rewriter attaches the policies that
//! apply to the current user (the view's owner: pg_tide builds, maintains
//! and verifies a view as its owner) to the tables' range table entries, as
//! `securityQuals`, which ruleutils does not print and the planner applies
//! to the tables' scans. A change's rows (transition tables, change logs)
//! are not scans of the table, so the plan the delta rules read must have
//! them as conditions of its own: here they join WHERE. The texts kept
//! (definition, internal views' queries) stay without them, so that each
//! picks up the policies as they are when it is analyzed again; a change of
//! policies rebuilds the views (tide.on_row_security_ddl).

use crate::pg::{self, raise};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;

/// Move the row-level security conditions of `q`'s tables into its WHERE.
/// A table under an outer join (whose conditions would have to apply
/// before the join) is refused.
///
/// # Safety
/// `q` must be an analyzed and rewritten SELECT Query.
pub(super) unsafe fn policies_as_conditions(q: *mut pg_sys::Query) {
    if (*q).jointree.is_null() {
        return;
    }
    let mut conditions: Vec<*mut pg_sys::Node> = Vec::new();
    for (i, rte) in pg::list::<pg_sys::RangeTblEntry>((*q).rtable).into_iter().enumerate() {
        if (*rte).securityQuals.is_null() {
            continue;
        }
        let rtindex = (i + 1) as i32;
        if under_outer_join((*(*q).jointree).fromlist.cast(), rtindex, false) {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "row-level security policies of table {} apply to the view's owner, and the table is under an outer join",
                    pg::qualified_relation_name((*rte).relid)
                ),
                None,
                Some("Create the view as a role the policies do not apply to, or join the table with an inner join."),
            );
        }
        for qual in pg::list::<pg_sys::Node>((*rte).securityQuals) {
            if pg::is_a(qual, pg_sys::NodeTag::T_List) {
                conditions.push(pg_sys::make_ands_explicit(qual.cast()).cast());
            } else {
                conditions.push(qual);
            }
        }
        (*rte).securityQuals = std::ptr::null_mut();
    }
    if conditions.is_empty() {
        return;
    }
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for c in conditions {
        let mut links = Vec::new();
        super::to_ir::collect(c, pg_sys::NodeTag::T_SubLink, &mut links);
        (*q).hasSubLinks |= !links.is_empty();
        list = pg_sys::lappend(list, c.cast());
    }
    let quals = (*(*q).jointree).quals;
    if !quals.is_null() {
        list = pg_sys::lappend(list, quals.cast());
    }
    (*(*q).jointree).quals = pg_sys::make_ands_explicit(list).cast();
}

/// Whether range table entry `rtindex` is under join tree `node` on a side
/// an outer join pads (`padded`: an enclosing join already pads it) or
/// under a FULL join.
unsafe fn under_outer_join(node: *mut pg_sys::Node, rtindex: i32, padded: bool) -> bool {
    use pg_sys::NodeTag::*;
    match (*node).type_ {
        T_RangeTblRef => padded && (*(node as *mut pg_sys::RangeTblRef)).rtindex == rtindex,
        T_List => pg::list::<pg_sys::Node>(node.cast()).into_iter().any(|n| under_outer_join(n, rtindex, padded)),
        T_FromExpr => under_outer_join((*(node as *mut pg_sys::FromExpr)).fromlist.cast(), rtindex, padded),
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            use pg_sys::JoinType::*;
            let (left, right) = match (*j).jointype {
                JOIN_LEFT => (false, true),
                JOIN_RIGHT => (true, false),
                JOIN_FULL => (true, true),
                _ => (false, false),
            };
            under_outer_join((*j).larg, rtindex, padded || left) || under_outer_join((*j).rarg, rtindex, padded || right)
        }
        _ => false,
    }
}

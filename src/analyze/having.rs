//! HAVING with a scalar sub-query (TPC-H Q11: groups whose sum is above a
//! fraction of the total). The query without those conditions is one
//! internal view (G, with the aggregates the conditions compare as extra
//! columns), the sub-query another (S, one row), and the view's query
//! becomes `SELECT <G's columns> FROM G, S WHERE <the conditions>`.

use super::sublinks::{add_subquery, new_select, one_row_aggregate, range_table_ref};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// `q` with its HAVING conditions on uncorrelated one-row sub-queries
/// moved above its groups, or `q` itself.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn scalars_over_groups(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    if (*q).havingQual.is_null() || !(*q).hasSubLinks {
        return q;
    }
    let conjuncts: Vec<*mut pg_sys::Node> = pg::list(pg_sys::make_ands_implicit((*q).havingQual.cast()));
    let (over, kept): (Vec<_>, Vec<_>) = conjuncts.into_iter().partition(|c| has_scalar(*c));
    if over.is_empty() {
        return q;
    }
    let g = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let mut kept_list: *mut pg_sys::List = std::ptr::null_mut();
    for c in &kept {
        kept_list = pg_sys::lappend(kept_list, (*c).cast());
    }
    (*g).havingQual = if kept_list.is_null() { std::ptr::null_mut() } else { pg_sys::make_ands_explicit(kept_list).cast() };
    (*g).sortClause = std::ptr::null_mut();
    (*g).hasSubLinks = kept.iter().any(|c| {
        let mut found = Vec::new();
        super::to_ir::collect(*c, pg_sys::NodeTag::T_SubLink, &mut found);
        !found.is_empty()
    }) || pg::list::<pg_sys::TargetEntry>((*g).targetList).iter().any(|t| {
        let mut found = Vec::new();
        super::to_ir::collect((**t).expr.cast(), pg_sys::NodeTag::T_SubLink, &mut found);
        !found.is_empty()
    }) || !(*(*g).jointree).quals.is_null();
    let top = new_select();
    let g_rt = add_subquery(top, g, "groups");
    let mut ctx = Lift { top, g, g_rt, extra: Vec::new(), scalars: Vec::new() };
    let mut conds: *mut pg_sys::List = std::ptr::null_mut();
    for c in &over {
        let lifted = lift(*c, (&mut ctx as *mut Lift).cast());
        conds = pg_sys::lappend(conds, lifted.cast());
    }
    // G's columns: its own, then the lifted expressions, then its junk.
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*g).targetList);
    let (shown, junk): (Vec<_>, Vec<_>) = targets.into_iter().partition(|t| !(**t).resjunk);
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    let mut resno = 0;
    for t in shown.iter().copied().chain(ctx.extra.iter().copied()).chain(junk.iter().copied()) {
        resno += 1;
        (*t).resno = resno;
        list = pg_sys::lappend(list, t.cast());
    }
    (*g).targetList = list;
    // Now that G's range table entry knows its final columns: again, as the
    // lifted Vars' attribute numbers follow the shown columns.
    let entry = pg_sys::list_nth((*top).rtable, g_rt - 1) as *mut pg_sys::RangeTblEntry;
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*g).targetList).into_iter().filter(|t| !(**t).resjunk) {
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup((*t).resname)).cast());
    }
    (*(*entry).eref).colnames = names;
    let mut from: *mut pg_sys::List = pg_sys::lappend(std::ptr::null_mut(), range_table_ref(g_rt).cast());
    for s in &ctx.scalars {
        from = pg_sys::lappend(from, range_table_ref(*s).cast());
    }
    (*top).jointree = pg_sys::makeFromExpr(from, pg_sys::make_ands_explicit(conds).cast());
    let mut out: *mut pg_sys::List = std::ptr::null_mut();
    for t in &shown {
        let e = (**t).expr.cast();
        let var = pg_sys::makeVar(g_rt, (**t).resno, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        out = pg_sys::lappend(out, pg_sys::makeTargetEntry(var.cast(), (**t).resno, (**t).resname, false).cast());
    }
    (*top).targetList = out;
    top
}

/// Whether a condition has an uncorrelated one-row scalar sub-query.
unsafe fn has_scalar(c: *mut pg_sys::Node) -> bool {
    let mut found = Vec::new();
    super::to_ir::collect(c, pg_sys::NodeTag::T_SubLink, &mut found);
    !found.is_empty()
        && found.iter().all(|s| {
            let s = *s as *mut pg_sys::SubLink;
            (*s).subLinkType == pg_sys::SubLinkType::EXPR_SUBLINK
                && one_row_aggregate((*s).subselect.cast())
                && !pg_sys::contain_vars_of_level((*s).subselect, 1)
        })
}

struct Lift {
    top: *mut pg_sys::Query,
    g: *mut pg_sys::Query,
    g_rt: i32,
    /// Target entries added to G for the lifted expressions.
    extra: Vec<*mut pg_sys::TargetEntry>,
    /// Range table entries of the sub-queries.
    scalars: Vec<i32>,
}

/// A HAVING condition over G and S: its aggregates and grouped columns
/// become columns of G, its sub-queries columns of theirs.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn lift(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &mut *(ctx as *mut Lift);
    if pg::is_a(node, pg_sys::NodeTag::T_SubLink) {
        let sub = pg_sys::copyObjectImpl((*(node as *mut pg_sys::SubLink)).subselect.cast()) as *mut pg_sys::Query;
        let rt = add_subquery(c.top, sub, "scalar");
        c.scalars.push(rt);
        let t = pg::list::<pg_sys::TargetEntry>((*sub).targetList)[0];
        let e = (*t).expr.cast();
        return pg_sys::makeVar(rt, 1, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0).cast();
    }
    let is_var = pg::is_a(node, pg_sys::NodeTag::T_Var) && (*(node as *mut pg_sys::Var)).varlevelsup == 0;
    if pg::is_a(node, pg_sys::NodeTag::T_Aggref) || is_var {
        let shown = pg::list::<pg_sys::TargetEntry>((*c.g).targetList).iter().filter(|t| !(***t).resjunk).count();
        let n = shown + c.extra.len() + 1;
        let name = std::ffi::CString::new(format!("__tide_having_{}", c.extra.len() + 1)).expect("no NUL");
        let te = pg_sys::makeTargetEntry(node.cast(), n as i16, pg_sys::pstrdup(name.as_ptr()), false);
        c.extra.push(te);
        return pg_sys::makeVar(c.g_rt, n as i16, pg_sys::exprType(node), pg_sys::exprTypmod(node), pg_sys::exprCollation(node), 0).cast();
    }
    pg::mutate_children(node, lift, ctx)
}

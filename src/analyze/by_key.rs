//! `EXISTS (SELECT .. FROM s WHERE θ)` whose correlation θ with the query
//! is one the other rewrites do not take (two comparisons, `BETWEEN`, `OR`,
//! `s.a + t.b > 0`, ...), where θ refers to one table t of the query that has
//! a primary key, is taken as correlated by that key:
//!
//! `EXISTS (SELECT .. FROM s, t AS t2 WHERE θ[t := t2] AND t2.pk = t.pk)`
//!
//! A row of t has a match in s exactly when its copy t2 (the row with the
//! same key) does. The sub-query is then correlated by equalities only, and
//! maintained as such (`sublinks`, `quantified`): its distinct keys are an
//! internal view, the join of s and t on θ, which the join rules maintain
//! (a change of s is Δs ⋈θ t, a change of t is Δt ⋈θ s).

use crate::pg;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::c_void;

/// Rewrite, in place, the EXISTS sub-links of `q`'s select list and WHERE
/// that `correlated_otherwise` finds, as described above.
///
/// # Safety
/// `q` must be an analyzed SELECT Query.
pub(super) unsafe fn exists_by_key(q: *mut pg_sys::Query) {
    if !(*q).hasSubLinks || (*q).jointree.is_null() || !super::plan::inner_joins_only(q) {
        return;
    }
    let mut links = Vec::new();
    super::to_ir::collect((*(*q).jointree).quals, pg_sys::NodeTag::T_SubLink, &mut links);
    for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
        super::to_ir::collect((*t).expr.cast(), pg_sys::NodeTag::T_SubLink, &mut links);
    }
    for link in links {
        let link = link as *mut pg_sys::SubLink;
        if (*link).subLinkType != pg_sys::SubLinkType::EXISTS_SUBLINK {
            continue;
        }
        let sub = (*link).subselect as *mut pg_sys::Query;
        if let Some(rt) = correlated_otherwise(q, sub) {
            if let Some(key) = primary_key((*(pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry)).relid) {
                by_key(q, sub, rt, &key);
            }
        }
    }
}

/// The range table index of the one table of `q` that `sub` refers to,
/// when `sub` is a select-project-join over tables whose correlation the
/// other rewrites do not take: a condition that is not `outer op inner`,
/// or two comparisons that are not equalities.
unsafe fn correlated_otherwise(q: *mut pg_sys::Query, sub: *mut pg_sys::Query) -> Option<i32> {
    if !super::quantified::row_per_row(sub)
        || (*sub).hasSubLinks
        || (*sub).hasDistinctOn
        || !(*sub).limitCount.is_null()
        || !(*sub).limitOffset.is_null()
        || !(*sub).rowMarks.is_null()
    {
        return None;
    }
    let tables_only = pg::list::<pg_sys::RangeTblEntry>((*sub).rtable)
        .into_iter()
        .all(|r| matches!((*r).rtekind, pg_sys::RTEKind::RTE_RELATION | pg_sys::RTEKind::RTE_JOIN));
    if !tables_only {
        return None;
    }
    let vars: Vec<*mut pg_sys::Var> = pg::list(pg_sys::pull_vars_of_level(sub.cast(), 1));
    let rt = (**vars.first()?).varno;
    if vars.iter().any(|v| (**v).varno != rt) || !pg::list::<pg_sys::Var>(pg_sys::pull_vars_of_level(sub.cast(), 2)).is_empty() {
        return None;
    }
    let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
    if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
        return None;
    }
    let taken_otherwise = match super::sublinks::Correlation::of(sub) {
        None => false,
        Some(c) => c.refs.iter().filter(|(op, _, _, _)| super::sublinks::equality((*op).cast()).is_none()).count() <= 1,
    };
    (!taken_otherwise).then_some(rt)
}

/// A primary key column: its number, type, typmod and collation.
struct KeyColumn {
    attnum: i16,
    typid: pg_sys::Oid,
    typmod: i32,
    collation: pg_sys::Oid,
}

/// The columns of `relid`'s primary key; None without one.
fn primary_key(relid: pg_sys::Oid) -> Option<Vec<KeyColumn>> {
    let columns = Spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attnum, a.atttypid, a.atttypmod, a.attcollation \
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
              WHERE i.indrelid = $1 AND i.indisprimary ORDER BY a.attnum",
            None,
            &[relid.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(KeyColumn {
                attnum: row.get::<i16>(1)?.unwrap_or(0),
                typid: row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                typmod: row.get::<i32>(3)?.unwrap_or(-1),
                collation: row.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::InvalidOid),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .ok()?;
    (!columns.is_empty()).then_some(columns)
}

/// Where `sub`'s references to table `outer` of the enclosing query go: to
/// its copy at `copy` in `sub`.
struct Moved {
    outer: i32,
    copy: i32,
}

/// A copy of `node` with the references `Moved` names moved to the copy.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn move_references(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let m = &*(ctx as *const Moved);
    if pg::is_a(node, pg_sys::NodeTag::T_Var) {
        let v = node as *mut pg_sys::Var;
        if (*v).varlevelsup == 1 && (*v).varno == m.outer {
            let moved = pg_sys::copyObjectImpl(node.cast()) as *mut pg_sys::Var;
            (*moved).varlevelsup = 0;
            (*moved).varno = m.copy;
            (*moved).varnosyn = m.copy as pg_sys::Index;
            return moved.cast();
        }
        return node;
    }
    pg::mutate_children(node, move_references, ctx)
}

/// Rewrite `sub` as correlated by the key of table `rt` of `q` (see the
/// module comment).
unsafe fn by_key(q: *mut pg_sys::Query, sub: *mut pg_sys::Query, rt: i32, key: &[KeyColumn]) {
    let rte = pg_sys::copyObjectImpl(pg_sys::list_nth((*q).rtable, rt - 1)) as *mut pg_sys::RangeTblEntry;
    (*sub).rtable = pg_sys::lappend((*sub).rtable, rte.cast());
    let copy = pg_sys::list_length((*sub).rtable);
    let mut moved = Moved { outer: rt, copy };
    let ctx = (&mut moved as *mut Moved).cast();
    (*sub).jointree = move_references((*sub).jointree.cast(), ctx).cast();
    (*sub).targetList = move_references((*sub).targetList.cast(), ctx).cast();
    (*(*sub).jointree).fromlist = pg_sys::lappend((*(*sub).jointree).fromlist, super::sublinks::range_table_ref(copy).cast());
    let mut quals = Vec::new();
    let existing = (*(*sub).jointree).quals;
    if !existing.is_null() {
        quals.push(existing);
    }
    for k in key {
        let eq = pg_sys::lookup_type_cache(k.typid, pg_sys::TYPECACHE_EQ_OPR as i32);
        let inner = pg_sys::makeVar(copy, k.attnum, k.typid, k.typmod, k.collation, 0);
        let outer = pg_sys::makeVar(rt, k.attnum, k.typid, k.typmod, k.collation, 1);
        let op = pg_sys::make_opclause((*eq).eq_opr, pg_sys::BOOLOID, false, inner.cast(), outer.cast(), pg_sys::InvalidOid, k.collation);
        pg_sys::set_opfuncid(op.cast());
        quals.push(op.cast());
    }
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for c in quals {
        list = pg_sys::lappend(list, c.cast());
    }
    (*(*sub).jointree).quals = pg_sys::make_ands_explicit(list).cast();
}

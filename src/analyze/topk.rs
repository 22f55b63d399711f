//! ORDER BY ... LIMIT at the top of a view's query: the query without its
//! ordering and limit moves into a sub-query, which becomes an internal
//! view (kept whole, incrementally), and the view's query becomes `SELECT
//! <its columns> FROM <that> ORDER BY ... LIMIT ...` (see `delta::topk`).

use super::quantified::{int8, int8_op, INT8_GT, INT8_LE};
use super::sublinks::{add_subquery, new_select, over_rows, range_table_ref};
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
    let (w, rt) = over_rows(q, inner, "top", "__tide_order");
    // The internal view keeps the rows of the inner query: never pull it up.
    (*(pg_sys::list_nth((*w).rtable, rt - 1) as *mut pg_sys::RangeTblEntry)).security_barrier = true;
    (*w).sortClause = pg_sys::copyObjectImpl((*q).sortClause.cast()).cast();
    (*w).limitCount = (*q).limitCount;
    (*w).limitOffset = (*q).limitOffset;
    (*w).limitOption = (*q).limitOption;
    w
}

/// LATERAL sub-queries with ORDER BY ... LIMIT, correlated by equalities
/// (the top rows per row of the items before them):
///
/// ```sql
/// FROM t, LATERAL (SELECT u.x FROM u WHERE u.k = t.k ORDER BY u.d DESC LIMIT 2) x
/// FROM t LEFT JOIN LATERAL (...) x ON true
/// ```
///
/// are the rows of u ranked per key: the sub-query becomes
/// `SELECT <its columns>, <keys>, row_number() OVER (PARTITION BY <keys>
/// ORDER BY <its ORDER BY>) FROM u WHERE <its own conditions>` (a window
/// sub-query, maintained by partition as an internal view), joined on the
/// keys and the rank (`rn <= 2`, or `rn > m AND rn <= m + n` with OFFSET m),
/// in WHERE, or for a LEFT JOIN in its ON. Where the ORDER BY does not
/// decide between tied rows, any of them may be taken, as by the query.
///
/// # Safety
/// `q` must be an analyzed SELECT Query of pg_tide's own (changed in place).
pub(super) unsafe fn lateral_as_ranked(q: *mut pg_sys::Query) {
    if (*q).jointree.is_null() {
        return;
    }
    let mut conditions: Vec<*mut pg_sys::Node> = Vec::new();
    for item in pg::list::<pg_sys::Node>((*(*q).jointree).fromlist) {
        if pg::is_a(item, pg_sys::NodeTag::T_RangeTblRef) {
            conditions.extend(ranked(q, (*(item as *mut pg_sys::RangeTblRef)).rtindex).unwrap_or_default());
        } else if pg::is_a(item, pg_sys::NodeTag::T_JoinExpr) {
            let j = item as *mut pg_sys::JoinExpr;
            let kind = (*j).jointype;
            if super::sublinks::always_true((*j).quals)
                && (kind == pg_sys::JoinType::JOIN_INNER || kind == pg_sys::JoinType::JOIN_LEFT)
                && pg::is_a((*j).rarg, pg_sys::NodeTag::T_RangeTblRef)
            {
                if let Some(on) = ranked(q, (*((*j).rarg as *mut pg_sys::RangeTblRef)).rtindex) {
                    (*j).quals = and(on);
                }
            }
        }
    }
    if !conditions.is_empty() {
        let quals = (*(*q).jointree).quals;
        if !quals.is_null() {
            conditions.push(quals.cast());
        }
        (*(*q).jointree).quals = and(conditions);
    }
}

unsafe fn and(conditions: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for c in conditions {
        list = pg_sys::lappend(list, c.cast());
    }
    pg_sys::make_ands_explicit(list).cast()
}

/// A sub-query with ORDER BY ... LIMIT correlated by equalities, as rows
/// ranked per key (see `lateral_as_ranked`).
struct Ranked {
    /// `SELECT <its columns>, <keys>, <ORDER BY expressions>, row_number()
    /// OVER (...) AS __tide_rank FROM (<its rows>)`, uncorrelated.
    query: *mut pg_sys::Query,
    /// The correlation: (operator, outer expression at the enclosing
    /// level, outer is left, inner expression), and its key's column.
    keys: Vec<(super::sublinks::CorrelatedPair, usize)>,
    /// The rank's column.
    rank: usize,
    /// The ranks kept: above `offset`, up to `offset + count`.
    offset: i64,
    count: i64,
}

impl Ranked {
    /// `sub`'s rows ranked, their columns named `names` (as many as `sub`
    /// shows; None: their own).
    unsafe fn of(sub: *mut pg_sys::Query, names: Option<&[String]>) -> Option<Ranked> {
        if (*sub).limitCount.is_null()
            || (*sub).limitOption != pg_sys::LimitOption::LIMIT_OPTION_COUNT
            || (*sub).sortClause.is_null()
            || !(*sub).distinctClause.is_null()
            || !super::quantified::row_per_row(sub)
        {
            return None;
        }
        let count = constant((*sub).limitCount)?;
        let offset = if (*sub).limitOffset.is_null() { 0 } else { constant((*sub).limitOffset)? };
        if count < 1 || offset < 0 {
            return None;
        }
        let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
        let correlation = super::sublinks::Correlation::of(k)?;
        if correlation.refs.is_empty() || !correlation.equalities_only() {
            return None;
        }
        (*(*k).jointree).quals = correlation.own_quals();
        // Its columns, then the keys and the ORDER BY expressions, by position.
        let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*k).targetList);
        let shown: Vec<*mut pg_sys::TargetEntry> = targets.iter().copied().filter(|t| !(**t).resjunk).collect();
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        let mut push = |e: *mut pg_sys::Node| {
            let n = pg_sys::list_length(list) + 1;
            let name = std::ffi::CString::new(format!("c{n}")).expect("no NUL");
            list = pg_sys::lappend(list, pg_sys::makeTargetEntry(e.cast(), n as i16, pg_sys::pstrdup(name.as_ptr()), false).cast());
            n as usize
        };
        for t in &shown {
            push((**t).expr.cast());
        }
        let keys: Vec<usize> = correlation.refs.iter().map(|(_, _, _, inner)| push(*inner)).collect();
        let mut order = Vec::new();
        for s in pg::list::<pg_sys::SortGroupClause>((*k).sortClause) {
            let t = targets.iter().find(|t| (***t).ressortgroupref == (*s).tleSortGroupRef)?;
            let n = push((**t).expr.cast());
            let nulls = if (*s).nulls_first { " NULLS FIRST" } else { " NULLS LAST" };
            order.push(format!("c{n}{}{nulls}", direction(s, pg_sys::exprType((**t).expr.cast()))?));
        }
        (*k).targetList = list;
        (*k).sortClause = std::ptr::null_mut();
        (*k).limitCount = std::ptr::null_mut();
        (*k).limitOffset = std::ptr::null_mut();
        (*k).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
        if pg_sys::contain_vars_of_level(k.cast(), 1) {
            return None;
        }
        let columns: Vec<String> = (1..=pg_sys::list_length(list)).map(|i| format!("c{i}")).collect();
        let partition: Vec<String> = keys.iter().map(|n| format!("c{n}")).collect();
        // Its columns keep their names; the added ones get names of their own.
        let names: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match names {
                Some(names) if i < shown.len() => names.get(i).cloned().unwrap_or_else(|| c.clone()),
                None if i < shown.len() => pg::cstr((*shown[i]).resname),
                _ => format!("__tide_{c}"),
            })
            .collect();
        let select: Vec<String> = columns.iter().zip(&names).map(|(c, n)| format!("{c} AS {}", pg::quote_ident(n))).collect();
        let query = super::parse_query(&format!(
            "SELECT {}, row_number() OVER (PARTITION BY {} ORDER BY {}) AS __tide_rank FROM ({}) AS s({})",
            select.join(", "),
            partition.join(", "),
            order.join(", "),
            super::deparse_without_search_path(k).trim(),
            columns.join(", ")
        ));
        let keys = correlation.refs.into_iter().zip(keys).collect();
        Some(Ranked { query, keys, rank: columns.len() + 1, offset, count })
    }

    /// The conditions that join the ranked rows, at range table entry `rt`
    /// `levels_up` levels above the conditions, to the enclosing query.
    unsafe fn conditions(&self, rt: i32, levels_up: u32) -> Vec<*mut pg_sys::Node> {
        let var = |n: usize| {
            let t = pg::list::<pg_sys::TargetEntry>((*self.query).targetList)[n - 1];
            let e: *mut pg_sys::Node = (*t).expr.cast();
            pg_sys::makeVar(rt, n as i16, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0).cast::<pg_sys::Node>()
        };
        let mut conditions = Vec::new();
        for ((op, outer, outer_left, _), n) in &self.keys {
            let outer = pg_sys::copyObjectImpl((*outer).cast()) as *mut pg_sys::Node;
            if levels_up > 0 {
                pg::increment_var_sublevels_up(outer, levels_up as i32, 0);
            }
            let eq = pg_sys::copyObjectImpl((*op).cast()) as *mut pg_sys::OpExpr;
            let (l, r) = if *outer_left { (outer, var(*n)) } else { (var(*n), outer) };
            (*eq).args = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), l.cast()), r.cast());
            conditions.push(eq.cast());
        }
        if self.offset > 0 {
            conditions.push(int8_op(INT8_GT, var(self.rank), int8(self.offset)));
        }
        conditions.push(int8_op(INT8_LE, var(self.rank), int8(self.offset + self.count)));
        conditions
    }
}

/// Entry `rt` of `q` as the ranked rows (see `lateral_as_ranked`), if it is
/// such a LATERAL sub-query: the conditions that join it.
unsafe fn ranked(q: *mut pg_sys::Query, rt: i32) -> Option<Vec<*mut pg_sys::Node>> {
    let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
    if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY || !(*rte).lateral {
        return None;
    }
    let own: Vec<String> = pg::list::<pg_sys::String>((*(*rte).eref).colnames).into_iter().map(|n| pg::cstr((*n).sval)).collect();
    let ranked = Ranked::of((*rte).subquery, Some(&own))?;
    (*rte).subquery = ranked.query;
    (*rte).lateral = false;
    // The entry's column names are the query's.
    let mut names: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*ranked.query).targetList) {
        names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup((*t).resname)).cast());
    }
    (*(*rte).eref).colnames = names;
    Some(ranked.conditions(rt, 0))
}

/// A correlated scalar sub-query `(SELECT x FROM u WHERE u.k = t.k ORDER
/// BY ... LIMIT 1 [OFFSET m])` as a lookup among u's rows ranked per key:
/// `(SELECT r.x FROM <ranked> r WHERE r.k = t.k AND r.rank = m + 1)`, one
/// row or none per key, which `select_scalars` maintains.
pub(super) unsafe fn scalar_as_lookup(sub: *mut pg_sys::Query) -> Option<*mut pg_sys::Query> {
    let shown = pg::list::<pg_sys::TargetEntry>((*sub).targetList).into_iter().filter(|t| !(**t).resjunk).count();
    if shown != 1 {
        return None;
    }
    let ranked = Ranked::of(sub, None)?;
    if ranked.count != 1 {
        return None;
    }
    let lookup = new_select();
    let rt = add_subquery(lookup, ranked.query, "ranked");
    let conditions = ranked.conditions(rt, 1);
    (*lookup).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(rt).cast()), and(conditions));
    let t = pg::list::<pg_sys::TargetEntry>((*ranked.query).targetList)[0];
    let e: *mut pg_sys::Node = (*t).expr.cast();
    let var = pg_sys::makeVar(rt, 1, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
    (*lookup).targetList = pg_sys::lappend(std::ptr::null_mut(), pg_sys::makeTargetEntry(var.cast(), 1, (*t).resname, false).cast());
    (*lookup).hasSubLinks = false;
    Some(lookup)
}

/// The value of a LIMIT or OFFSET that is a constant (`LIMIT 1` is
/// `int8(1)` until folded).
pub(super) unsafe fn constant(e: *mut pg_sys::Node) -> Option<i64> {
    let c = pg_sys::eval_const_expressions(std::ptr::null_mut(), pg_sys::copyObjectImpl(e.cast()).cast());
    (pg::is_a(c, pg_sys::NodeTag::T_Const) && !(*(c as *mut pg_sys::Const)).constisnull)
        .then(|| (*(c as *mut pg_sys::Const)).constvalue.value() as i64)
}

/// " DESC" or "" for an ORDER BY item, when it orders by its type's default btree order.
unsafe fn direction(s: *mut pg_sys::SortGroupClause, ty: pg_sys::Oid) -> Option<&'static str> {
    let (mut family, mut input, mut strategy) = (pg_sys::InvalidOid, pg_sys::InvalidOid, 0i16);
    if !pg_sys::get_ordering_op_properties((*s).sortop, &mut family, &mut input, &mut strategy) {
        return None;
    }
    let class = pg_sys::GetDefaultOpClass(ty, pg_sys::BTREE_AM_OID);
    if class == pg_sys::InvalidOid || pg_sys::get_opclass_family(class) != family {
        return None;
    }
    Some(if strategy as u32 == pg_sys::BTGreaterStrategyNumber { " DESC" } else { "" })
}

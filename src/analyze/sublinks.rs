//! Sub-queries in expressions (sub-links), turned into joins with
//! sub-queries in FROM, which pg_tide maintains as internal views:
//!
//! - `EXISTS (SELECT .. FROM s WHERE s.b = t.a AND <s only>)` in WHERE: a
//!   join with K = `SELECT DISTINCT s.b FROM s WHERE <s only>` on `t.a =
//!   K.b`. One K row per key, so each row of t is matched at most once.
//! - `t.a IN (SELECT s.b FROM s ...)` in WHERE: the same, the compared
//!   columns being keys too (a grouped sub-query is kept whole: K is its
//!   distinct rows).
//! - `NOT EXISTS (...)` in WHERE: the rows minus those with a match in K,
//!   as terms of the plan (`Unnested::anti`).
//! - A scalar sub-query that aggregates without GROUP BY: uncorrelated, it
//!   is one row, joined to every row; correlated by equalities and compared
//!   in WHERE with a strict operator, it is grouped by the correlated
//!   columns and joined on them (a row without a group would compare with
//!   NULL and be dropped either way; aggregates that are not NULL over no
//!   rows, such as count, are not taken this way).
//!
//! Only sub-links in top-level conjuncts of WHERE (scalar ones anywhere in
//! WHERE and, without GROUP BY, in the select list) are unnested; the rest
//! stay and are refused by `delta::maintenance`, naming them.

use super::to_ir::flatten_join_aliases;
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// A NOT EXISTS conjunct of WHERE, kept as terms: the rows minus those whose
/// `equalities` (over this query and the keys' range table entry) hold.
pub struct Anti {
    /// The conjunct itself (left in WHERE for the statements that read full states).
    pub conjunct: *mut pg_sys::Node,
    /// The range table entry of the keys' sub-query (outside the join tree).
    pub rtindex: i32,
    pub equalities: Vec<*mut pg_sys::Node>,
    /// For `x NOT IN (...)`: the range table entry of the sub-query's one-row
    /// flags (`nonempty`, `has_null`) and `x`. A row is kept when the
    /// sub-query has no rows, or when x is not NULL, the sub-query has no
    /// NULL and no row equal to x (SQL's NOT IN).
    pub not_in: Option<(i32, *mut pg_sys::Node)>,
    /// For `[NOT] EXISTS (... WHERE s.k = t.k AND s.x <> t.x ...)` (another
    /// row of the same key): see `Other`.
    pub other: Option<Other>,
}

/// EXISTS correlated by equalities and one `<>` ("another row of the same
/// key", TPC-H Q21): with C the count of distinct `x` per key and K the
/// distinct (key, x), such a row exists when C.n ≥ 1 and t.x is not NULL,
/// less when C.n = 1 and (t.k, t.x) is in K (that one row is t.x itself).
pub struct Other {
    pub negated: bool,
    /// C: `k1..km, n` per key, at this range table entry.
    pub counts: i32,
    /// The outer expressions equal to the keys, and the one unequal to x.
    pub keys: Vec<*mut pg_sys::Node>,
    pub unequal: *mut pg_sys::Node,
}

/// Rewrite `q`'s sub-links as described above; returns the anti-joins.
///
/// # Safety
/// `q` must be an analyzed SELECT Query with CTEs inlined.
pub(super) unsafe fn unnest(q: *mut pg_sys::Query) -> Vec<Anti> {
    if !(*q).hasSubLinks || (*q).jointree.is_null() {
        return Vec::new();
    }
    let mut anti = Vec::new();
    let mut conjuncts: Vec<*mut pg_sys::Node> = Vec::new();
    let quals = (*(*q).jointree).quals;
    let list = if quals.is_null() { Vec::new() } else { pg::list::<pg_sys::Node>(pg_sys::make_ands_implicit(quals.cast())) };
    for c in list {
        if let Some(sub) = sublink(c, pg_sys::SubLinkType::EXISTS_SUBLINK) {
            if let Some(keys) = keys_of(sub, None) {
                let rt = add_subquery(q, keys.query, "exists");
                (*(*q).jointree).fromlist = pg_sys::lappend((*(*q).jointree).fromlist, range_table_ref(rt).cast());
                conjuncts.extend(keys.equalities(rt));
                continue;
            }
            if let Some(a) = another_row(q, c, sub, false) {
                anti.push(a);
                conjuncts.push(c);
                continue;
            }
        } else if let Some(sub) = negated_exists(c) {
            if let Some(keys) = keys_of(sub, None) {
                let rt = add_subquery(q, keys.query, "not_exists");
                anti.push(Anti { conjunct: c, rtindex: rt, equalities: keys.equalities(rt), not_in: None, other: None });
                conjuncts.push(c);
                continue;
            }
            if let Some(a) = another_row(q, c, sub, true) {
                anti.push(a);
                conjuncts.push(c);
                continue;
            }
        } else if let Some(a) = not_in(q, c) {
            anti.push(a);
            conjuncts.push(c);
            continue;
        } else if let Some(link) = any_sublink(c) {
            if let Some(keys) = keys_of((*link).subselect.cast(), Some((*link).testexpr)) {
                let rt = add_subquery(q, keys.query, "in");
                (*(*q).jointree).fromlist = pg_sys::lappend((*(*q).jointree).fromlist, range_table_ref(rt).cast());
                conjuncts.extend(keys.equalities(rt));
                continue;
            }
        }
        conjuncts.push(correlated_scalar(q, c).unwrap_or_else(|| replace_scalars(q, c)));
    }
    let mut l: *mut pg_sys::List = std::ptr::null_mut();
    for c in conjuncts {
        l = pg_sys::lappend(l, c.cast());
    }
    (*(*q).jointree).quals = if l.is_null() { std::ptr::null_mut() } else { pg_sys::make_ands_explicit(l).cast() };
    if (*q).groupClause.is_null() && !(*q).hasAggs {
        for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
            (*t).expr = replace_scalars(q, (*t).expr.cast()).cast();
        }
    }
    anti
}

/// The sub-query of `node` if it is a sub-link of `kind`.
unsafe fn sublink(node: *mut pg_sys::Node, kind: pg_sys::SubLinkType::Type) -> Option<*mut pg_sys::Query> {
    if !pg::is_a(node, pg_sys::NodeTag::T_SubLink) {
        return None;
    }
    let s = node as *mut pg_sys::SubLink;
    ((*s).subLinkType == kind).then(|| (*s).subselect.cast())
}

unsafe fn negated_exists(node: *mut pg_sys::Node) -> Option<*mut pg_sys::Query> {
    if !pg::is_a(node, pg_sys::NodeTag::T_BoolExpr) {
        return None;
    }
    let b = node as *mut pg_sys::BoolExpr;
    if (*b).boolop != pg_sys::BoolExprType::NOT_EXPR {
        return None;
    }
    sublink(pg::list::<pg_sys::Node>((*b).args)[0], pg_sys::SubLinkType::EXISTS_SUBLINK)
}

unsafe fn any_sublink(node: *mut pg_sys::Node) -> Option<*mut pg_sys::SubLink> {
    sublink(node, pg_sys::SubLinkType::ANY_SUBLINK).map(|_| node as *mut pg_sys::SubLink)
}

/// `x NOT IN (SELECT y ...)`, uncorrelated, one column: the distinct `y`
/// (K) and the flags of the sub-query's rows, both added to `q`'s range
/// table outside its join tree.
unsafe fn not_in(q: *mut pg_sys::Query, c: *mut pg_sys::Node) -> Option<Anti> {
    let (sub, keys) = not_in_keys(c)?;
    let outer = keys.pairs[0].1;
    let flags = super::parse_query(&format!(
        "SELECT count(*) > 0 AS nonempty, coalesce(bool_or(f.v IS NULL), false) AS has_null FROM ({}) AS f(v)",
        super::deparse_without_search_path(sub).trim()
    ));
    let rt = add_subquery(q, keys.query, "not_in");
    let equalities = keys.equalities(rt);
    let flags_rt = add_subquery(q, flags, "not_in_flags");
    Some(Anti { conjunct: c, rtindex: rt, equalities, not_in: Some((flags_rt, outer)), other: None })
}

/// The sub-query of WHERE conjunct `c` and its keys if it is `x NOT IN
/// (SELECT y ...)` as `not_in` takes it.
unsafe fn not_in_keys(c: *mut pg_sys::Node) -> Option<(*mut pg_sys::Query, Keys)> {
    if !pg::is_a(c, pg_sys::NodeTag::T_BoolExpr) || (*(c as *mut pg_sys::BoolExpr)).boolop != pg_sys::BoolExprType::NOT_EXPR {
        return None;
    }
    let link = any_sublink(pg::list::<pg_sys::Node>((*(c as *mut pg_sys::BoolExpr)).args)[0])?;
    let sub: *mut pg_sys::Query = (*link).subselect.cast();
    if pg_sys::contain_vars_of_level(sub.cast(), 1) || !pg::is_a((*link).testexpr, pg_sys::NodeTag::T_OpExpr) {
        return None;
    }
    let keys = keys_of(sub, Some((*link).testexpr))?;
    (keys.pairs.len() == 1).then_some((sub, keys))
}

/// `[NOT] EXISTS` correlated by equalities and one `<>` (see `Other`).
unsafe fn another_row(q: *mut pg_sys::Query, c: *mut pg_sys::Node, sub: *mut pg_sys::Query, negated: bool) -> Option<Anti> {
    let OtherRows { k, keys, unequal } = other_rows(sub)?;
    let rows = super::deparse_without_search_path(k);
    let m = keys.len();
    let key_cols: Vec<String> = (1..=m).map(|i| format!("k{i}")).collect();
    let aliases = format!("{}, v", key_cols.join(", "));
    let counts = super::parse_query(&format!(
        "SELECT {k}, count(DISTINCT v) AS n FROM ({rows}) AS s({aliases}) GROUP BY {k}",
        k = key_cols.join(", "),
        rows = rows.trim()
    ));
    let pairs = super::parse_query(&format!(
        "SELECT DISTINCT {k}, v FROM ({rows}) AS s({aliases}) WHERE v IS NOT NULL",
        k = key_cols.join(", "),
        rows = rows.trim()
    ));
    let counts_rt = add_subquery(q, counts, "other_counts");
    let pairs_rt = add_subquery(q, pairs, "other_rows");
    let other = Other { negated, counts: counts_rt, keys, unequal };
    Some(Anti { conjunct: c, rtindex: pairs_rt, equalities: Vec::new(), not_in: None, other: Some(other) })
}

/// The parts of an EXISTS sub-query correlated by equalities and one `<>`:
/// its rows as (keys, x) with its own conditions, and the outer
/// expressions equal to the keys and unequal to x.
struct OtherRows {
    k: *mut pg_sys::Query,
    keys: Vec<*mut pg_sys::Node>,
    unequal: *mut pg_sys::Node,
}

unsafe fn other_rows(sub: *mut pg_sys::Query) -> Option<OtherRows> {
    if (*sub).hasAggs
        || !(*sub).groupClause.is_null()
        || !(*sub).havingQual.is_null()
        || !(*sub).setOperations.is_null()
        || !(*sub).limitCount.is_null()
        || (*sub).hasWindowFuncs
        || (*(*sub).jointree).quals.is_null()
    {
        return None;
    }
    let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    let correlation = Correlation::of(k)?;
    let mut keys: Vec<(*mut pg_sys::Node, *mut pg_sys::Node)> = Vec::new();
    let mut unequal: Option<(*mut pg_sys::Node, *mut pg_sys::Node)> = None;
    for (op, outer, _, inner) in &correlation.refs {
        let ty = pg_sys::exprType(*inner);
        if pg_sys::op_mergejoinable((**op).opno, ty) {
            keys.push((*outer, *inner));
        } else if unequal.is_none() && pg_sys::op_mergejoinable(pg_sys::get_negator((**op).opno), ty) {
            unequal = Some((*outer, *inner));
        } else {
            return None;
        }
    }
    let (unequal_outer, unequal_inner) = unequal?;
    if keys.is_empty() {
        return None;
    }
    // The sub-query's rows as (keys, x), its own conditions kept.
    (*(*k).jointree).quals = correlation.own_quals();
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for (i, e) in keys.iter().map(|(_, inner)| *inner).chain([unequal_inner]).enumerate() {
        let name = std::ffi::CString::new(format!("c{}", i + 1)).expect("no NUL");
        list = pg_sys::lappend(list, pg_sys::makeTargetEntry(e.cast(), (i + 1) as i16, pg_sys::pstrdup(name.as_ptr()), false).cast());
    }
    (*k).targetList = list;
    (*k).sortClause = std::ptr::null_mut();
    (*k).distinctClause = std::ptr::null_mut();
    if pg_sys::contain_vars_of_level(k.cast(), 1) {
        return None;
    }
    Some(OtherRows { k, keys: keys.iter().map(|(outer, _)| *outer).collect(), unequal: unequal_outer })
}

/// Whether `unnest` takes WHERE conjunct `c` as a join (a semi-join, an
/// anti-join, `NOT IN`, another row of the same key), so that
/// `quantified` leaves it.
pub(super) unsafe fn joined(c: *mut pg_sys::Node) -> bool {
    let exists = sublink(c, pg_sys::SubLinkType::EXISTS_SUBLINK).or_else(|| negated_exists(c));
    if let Some(sub) = exists {
        return keys_of(sub, None).is_some() || other_rows(sub).is_some();
    }
    if let Some(link) = any_sublink(c) {
        return keys_of((*link).subselect.cast(), Some((*link).testexpr)).is_some();
    }
    not_in_keys(c).is_some()
}

/// The distinct keys of a semi-join's sub-query, and how they compare with
/// this query's rows.
struct Keys {
    query: *mut pg_sys::Query,
    /// Per key column (1-based, in order): the equality's operator node (to
    /// copy), the expression over this query, and whether it is the left operand.
    pairs: Vec<(*mut pg_sys::OpExpr, *mut pg_sys::Node, bool)>,
}

impl Keys {
    /// The equalities, over this query and the keys' entry `rt`.
    unsafe fn equalities(&self, rt: i32) -> Vec<*mut pg_sys::Node> {
        let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*self.query).targetList);
        self.pairs
            .iter()
            .enumerate()
            .map(|(i, (op, outer, outer_left))| {
                let e = (*targets[i]).expr.cast();
                let var = pg_sys::makeVar(rt, (i + 1) as i16, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
                let eq = pg_sys::copyObjectImpl((*op).cast()) as *mut pg_sys::OpExpr;
                let args = if *outer_left { [*outer, var.cast()] } else { [var.cast(), *outer] };
                (*eq).args = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), args[0].cast()), args[1].cast());
                eq.cast()
            })
            .collect()
    }
}

/// The keys of an EXISTS (`test` None) or IN (`test` its comparison)
/// sub-query, when its references to this query are equalities in its WHERE.
unsafe fn keys_of(sub: *mut pg_sys::Query, test: Option<*mut pg_sys::Node>) -> Option<Keys> {
    if (*sub).commandType != pg_sys::CmdType::CMD_SELECT
        || !(*sub).setOperations.is_null()
        || !(*sub).limitCount.is_null()
        || !(*sub).limitOffset.is_null()
        || (*sub).hasWindowFuncs
        || (*sub).hasTargetSRFs
    {
        return None;
    }
    let grouped = (*sub).hasAggs || !(*sub).groupClause.is_null() || !(*sub).havingQual.is_null() || !(*sub).distinctClause.is_null();
    let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    // Keys compared by the IN: (operator, outer expression, outer is left, sub-query output column).
    let mut compared: Vec<(*mut pg_sys::OpExpr, *mut pg_sys::Node, bool, i32)> = Vec::new();
    if let Some(test) = test {
        let ops: Vec<*mut pg_sys::Node> = pg::list(pg_sys::make_ands_implicit(test.cast()));
        for op in ops {
            let (op, args) = equality(op)?;
            let (outer, param, outer_left) = match (param_of(args[0]), param_of(args[1])) {
                (None, Some(p)) => (args[0], p, true),
                (Some(p), None) => (args[1], p, false),
                _ => return None,
            };
            // The outer expression is this query's own (level 0 here).
            if pg_sys::contain_vars_of_level(outer, 1) {
                return None;
            }
            compared.push((op, outer, outer_left, param));
        }
    }
    // The sub-query's WHERE: references to this query only as equalities.
    let correlation = Correlation::of(k)?;
    if !correlation.equalities_only() || (grouped && !correlation.refs.is_empty()) {
        return None;
    }
    let correlated = &correlation.refs;
    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*k).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    let mut pairs = Vec::new();
    if grouped {
        // Kept whole (uncorrelated): its distinct rows are the keys; every
        // output column must be compared, in order.
        if compared.len() != targets.len() || compared.iter().enumerate().any(|(i, c)| c.3 != i as i32 + 1) {
            return None;
        }
        if (*k).hasDistinctOn {
            return None;
        }
        for (op, outer, left, _) in &compared {
            pairs.push((*op, *outer, *left));
        }
        (*k).sortClause = std::ptr::null_mut();
        let k = if distinct_already(k) { k } else { wrap_distinct(k) };
        if pg_sys::contain_vars_of_level(k.cast(), 1) {
            return None;
        }
        return Some(Keys { query: k, pairs });
    } else {
        (*(*k).jointree).quals = correlation.own_quals();
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        let mut push = |e: *mut pg_sys::Node| {
            let n = pg_sys::list_length(list) + 1;
            let name = std::ffi::CString::new(format!("k{n}")).expect("no NUL");
            let te = pg_sys::makeTargetEntry(e.cast(), n as i16, pg_sys::pstrdup(name.as_ptr()), false);
            list = pg_sys::lappend(list, te.cast());
        };
        for (op, outer, left, param) in &compared {
            push(pg_sys::copyObjectImpl((*targets[(*param - 1) as usize]).expr.cast()).cast());
            pairs.push((*op, *outer, *left));
        }
        for (op, outer, left, inner) in correlated {
            push(*inner);
            pairs.push((*op, *outer, *left));
        }
        if pairs.is_empty() {
            // Uncorrelated EXISTS: one row when the sub-query has any.
            push(pg_sys::makeBoolConst(true, false));
        }
        (*k).targetList = list;
        (*k).sortClause = std::ptr::null_mut();
        (*k).distinctClause = std::ptr::null_mut();
        make_distinct(k);
    }
    if pg_sys::contain_vars_of_level(k.cast(), 1) {
        return None;
    }
    Some(Keys { query: k, pairs })
}

/// A sub-query's WHERE, split: its own conditions, and those that compare an
/// expression of the enclosing query (moved to that level) with one of its
/// own: (operator, outer expression, outer is left, inner expression).
pub(super) struct Correlation {
    pub(super) inner_only: *mut pg_sys::List,
    pub(super) refs: Vec<CorrelatedPair>,
}

impl Correlation {
    /// None when a condition refers to the enclosing query otherwise.
    pub(super) unsafe fn of(k: *mut pg_sys::Query) -> Option<Correlation> {
        let mut c = Correlation { inner_only: std::ptr::null_mut(), refs: Vec::new() };
        let quals = (*(*k).jointree).quals;
        if quals.is_null() {
            return Some(c);
        }
        let outer_only = |n: *mut pg_sys::Node| pg_sys::contain_vars_of_level(n, 1) && !pg_sys::contain_vars_of_level(n, 0);
        for d in pg::list::<pg_sys::Node>(pg_sys::make_ands_implicit(flatten_join_aliases(k, quals).cast())) {
            if !pg_sys::contain_vars_of_level(d, 1) {
                c.inner_only = pg_sys::lappend(c.inner_only, d.cast());
                continue;
            }
            if !pg::is_a(d, pg_sys::NodeTag::T_OpExpr) {
                return None;
            }
            let op = d as *mut pg_sys::OpExpr;
            let a: Vec<*mut pg_sys::Node> = pg::list((*op).args);
            if a.len() != 2 {
                return None;
            }
            let (outer, inner, outer_left) = if outer_only(a[0]) && !pg_sys::contain_vars_of_level(a[1], 1) {
                (a[0], a[1], true)
            } else if outer_only(a[1]) && !pg_sys::contain_vars_of_level(a[0], 1) {
                (a[1], a[0], false)
            } else {
                return None;
            };
            let outer = pg_sys::copyObjectImpl(outer.cast()) as *mut pg_sys::Node;
            pg::increment_var_sublevels_up(outer, -1, 1);
            c.refs.push((op, outer, outer_left, inner));
        }
        Some(c)
    }

    /// Whether every reference is an equality.
    pub(super) unsafe fn equalities_only(&self) -> bool {
        self.refs.iter().all(|(op, _, _, _)| equality((*op).cast()).is_some())
    }

    /// The sub-query's own conditions, as its WHERE.
    pub(super) unsafe fn own_quals(&self) -> *mut pg_sys::Node {
        if self.inner_only.is_null() {
            std::ptr::null_mut()
        } else {
            pg_sys::make_ands_explicit(self.inner_only).cast()
        }
    }
}

/// `node` as an equality (a mergejoinable operator) with its two operands.
pub(super) unsafe fn equality(node: *mut pg_sys::Node) -> Option<(*mut pg_sys::OpExpr, Vec<*mut pg_sys::Node>)> {
    if !pg::is_a(node, pg_sys::NodeTag::T_OpExpr) {
        return None;
    }
    let op = node as *mut pg_sys::OpExpr;
    let args: Vec<*mut pg_sys::Node> = pg::list((*op).args);
    (args.len() == 2 && pg_sys::op_mergejoinable((*op).opno, pg_sys::exprType(args[0]))).then_some((op, args))
}

/// The sub-query output column a PARAM_SUBLINK parameter stands for.
pub(super) unsafe fn param_of(node: *mut pg_sys::Node) -> Option<i32> {
    let mut n = node;
    // An implicit cast of the sub-query's column.
    while pg::is_a(n, pg_sys::NodeTag::T_RelabelType) {
        n = (*(n as *mut pg_sys::RelabelType)).arg.cast();
    }
    if !pg::is_a(n, pg_sys::NodeTag::T_Param) {
        return None;
    }
    let p = n as *mut pg_sys::Param;
    ((*p).paramkind == pg_sys::ParamKind::PARAM_SUBLINK).then_some((*p).paramid)
}

/// Whether a grouped query's rows are distinct already: DISTINCT, or every
/// output column a GROUP BY key.
unsafe fn distinct_already(k: *mut pg_sys::Query) -> bool {
    if !(*k).distinctClause.is_null() {
        return true;
    }
    let groups: Vec<pg_sys::Index> = pg::list::<pg_sys::SortGroupClause>((*k).groupClause).iter().map(|g| (**g).tleSortGroupRef).collect();
    (*k).groupingSets.is_null()
        && !groups.is_empty()
        && pg::list::<pg_sys::TargetEntry>((*k).targetList)
            .iter()
            .filter(|t| !(***t).resjunk)
            .all(|t| groups.contains(&(**t).ressortgroupref))
}

/// Whether a join condition is none at all: NULL, or the constant true
/// (`CROSS JOIN`, `ON true`).
pub(super) unsafe fn always_true(quals: *mut pg_sys::Node) -> bool {
    quals.is_null()
        || (pg::is_a(quals, pg_sys::NodeTag::T_Const)
            && !(*(quals as *mut pg_sys::Const)).constisnull
            && (*(quals as *mut pg_sys::Const)).constvalue.value() != 0)
}

/// `SELECT <q's columns> FROM (inner) alias`, `inner` being a copy of `q`
/// without what the caller takes above it: `inner`'s hidden columns are
/// shown (named `<hidden>_<resno>`), and the columns over it keep their
/// numbers, names and sort and group references, so that `q`'s ORDER BY,
/// DISTINCT [ON] and LIMIT can be set on the result as they are. Returns
/// the result and `inner`'s range table index in it.
pub(super) unsafe fn over_rows(q: *mut pg_sys::Query, inner: *mut pg_sys::Query, alias: &str, hidden: &str) -> (*mut pg_sys::Query, i32) {
    for t in pg::list::<pg_sys::TargetEntry>((*inner).targetList) {
        if (*t).resjunk {
            (*t).resjunk = false;
            let name = std::ffi::CString::new(format!("{hidden}_{}", (*t).resno)).expect("no NUL");
            (*t).resname = pg_sys::pstrdup(name.as_ptr());
        }
    }
    let top = new_select();
    let rt = add_subquery(top, inner, alias);
    (*top).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(rt).cast()), std::ptr::null_mut());
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
        let e = (*t).expr.cast();
        let var = pg_sys::makeVar(rt, (*t).resno, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        let te = pg_sys::makeTargetEntry(var.cast(), (*t).resno, (*t).resname, (*t).resjunk);
        (*te).ressortgroupref = (*t).ressortgroupref;
        list = pg_sys::lappend(list, te.cast());
    }
    (*top).targetList = list;
    (top, rt)
}

/// An empty SELECT Query, to build on.
pub(super) unsafe fn new_select() -> *mut pg_sys::Query {
    let w = pg_sys::palloc0(std::mem::size_of::<pg_sys::Query>()) as *mut pg_sys::Query;
    (*w).type_ = pg_sys::NodeTag::T_Query;
    (*w).commandType = pg_sys::CmdType::CMD_SELECT;
    (*w).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
    (*w).canSetTag = true;
    w
}

/// `SELECT DISTINCT * FROM (sub) s`, as a Query.
pub(super) unsafe fn wrap_distinct(sub: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let w = new_select();
    let rt = add_subquery(w, sub, "s");
    (*w).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(rt).cast()), std::ptr::null_mut());
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for (i, t) in pg::list::<pg_sys::TargetEntry>((*sub).targetList).into_iter().filter(|t| !(**t).resjunk).enumerate() {
        let e = (*t).expr.cast();
        let var = pg_sys::makeVar(rt, (i + 1) as i16, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        list = pg_sys::lappend(list, pg_sys::makeTargetEntry(var.cast(), (i + 1) as i16, pg_sys::pstrdup((*t).resname), false).cast());
    }
    (*w).targetList = list;
    make_distinct(w);
    w
}

/// DISTINCT over every output column of `k`.
unsafe fn make_distinct(k: *mut pg_sys::Query) {
    let mut next = pg::list::<pg_sys::TargetEntry>((*k).targetList).iter().map(|t| (**t).ressortgroupref).max().unwrap_or(0);
    let mut clause: *mut pg_sys::List = std::ptr::null_mut();
    for t in pg::list::<pg_sys::TargetEntry>((*k).targetList) {
        if (*t).resjunk {
            continue;
        }
        if (*t).ressortgroupref == 0 {
            next += 1;
            (*t).ressortgroupref = next;
        }
        clause = pg_sys::lappend(clause, sort_group_clause((*t).expr.cast(), (*t).ressortgroupref).cast());
    }
    (*k).distinctClause = clause;
    (*k).hasDistinctOn = false;
}

/// A SortGroupClause for grouping or DISTINCT on `expr`, with its type's
/// default operators.
unsafe fn sort_group_clause(expr: *mut pg_sys::Node, sortgroupref: pg_sys::Index) -> *mut pg_sys::SortGroupClause {
    let (mut lt, mut eq, mut hashable) = (pg_sys::InvalidOid, pg_sys::InvalidOid, false);
    pg_sys::get_sort_group_operators(pg_sys::exprType(expr), true, true, false, &mut lt, &mut eq, std::ptr::null_mut(), &mut hashable);
    let c = pg_sys::palloc0(std::mem::size_of::<pg_sys::SortGroupClause>()) as *mut pg_sys::SortGroupClause;
    (*c).type_ = pg_sys::NodeTag::T_SortGroupClause;
    (*c).tleSortGroupRef = sortgroupref;
    (*c).eqop = eq;
    (*c).sortop = lt;
    (*c).nulls_first = false;
    (*c).hashable = hashable;
    c
}

/// Add `sub` as a sub-query in `q`'s range table (not yet in its join
/// tree); returns its range table index.
pub(super) unsafe fn add_subquery(q: *mut pg_sys::Query, sub: *mut pg_sys::Query, name: &str) -> i32 {
    let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
    (*pstate).p_rtable = (*q).rtable;
    let n = pg_sys::list_length((*q).rtable) + 1;
    let alias = std::ffi::CString::new(format!("{name}_{n}")).expect("no NUL");
    let item = pg_sys::addRangeTableEntryForSubquery(pstate, sub, pg_sys::makeAlias(alias.as_ptr(), std::ptr::null_mut()), false, true);
    (*q).rtable = (*pstate).p_rtable;
    (*item).p_rtindex
}

pub(super) unsafe fn range_table_ref(rt: i32) -> *mut pg_sys::RangeTblRef {
    let r = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblRef>()) as *mut pg_sys::RangeTblRef;
    (*r).type_ = pg_sys::NodeTag::T_RangeTblRef;
    (*r).rtindex = rt;
    r
}

/// An uncorrelated scalar sub-query that aggregates without GROUP BY (one
/// row, always): its single output column.
pub(super) unsafe fn one_row_aggregate(sub: *mut pg_sys::Query) -> bool {
    (*sub).commandType == pg_sys::CmdType::CMD_SELECT
        && (*sub).setOperations.is_null()
        && (*sub).hasAggs
        && (*sub).groupClause.is_null()
        && (*sub).groupingSets.is_null()
        && (*sub).havingQual.is_null()
        && (*sub).limitCount.is_null()
        && (*sub).limitOffset.is_null()
        && !(*sub).hasTargetSRFs
        && !(*sub).hasWindowFuncs
}

struct Scalars {
    q: *mut pg_sys::Query,
}

/// Replace every uncorrelated one-row scalar sub-query in `node` by a column
/// of that sub-query, added to `q`'s FROM.
unsafe fn replace_scalars(q: *mut pg_sys::Query, node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let mut ctx = Scalars { q };
    scalar_mutator(node, (&mut ctx as *mut Scalars).cast())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn scalar_mutator(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    if let Some(sub) = sublink(node, pg_sys::SubLinkType::EXPR_SUBLINK) {
        if one_row_aggregate(sub) && !pg_sys::contain_vars_of_level(sub.cast(), 1) {
            let q = (*(ctx as *mut Scalars)).q;
            let sub = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
            if let Some(var) = shared_scalar(q, sub) {
                return var.cast();
            }
            let rt = add_subquery(q, sub, "scalar");
            (*(*q).jointree).fromlist = pg_sys::lappend((*(*q).jointree).fromlist, range_table_ref(rt).cast());
            return output_var(sub, rt).cast();
        }
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Query) {
        return node;
    }
    pg::mutate_children(node, scalar_mutator, ctx)
}

/// Scalar sub-queries over the same rows (FROM and WHERE) share one
/// internal view, one column each: every input of a join view is a term
/// more for each change. The column of `sub`'s value in such a sub-query of
/// `q` added before (the value added to it if need be), or None.
unsafe fn shared_scalar(q: *mut pg_sys::Query, sub: *mut pg_sys::Query) -> Option<*mut pg_sys::Var> {
    let no_junk = |k: *mut pg_sys::Query| pg::list::<pg_sys::TargetEntry>((*k).targetList).iter().all(|t| !(**t).resjunk);
    if !no_junk(sub) || pg_sys::list_length((*sub).targetList) != 1 {
        return None;
    }
    let rows = |k: *mut pg_sys::Query| {
        let k = pg_sys::copyObjectImpl(k.cast()) as *mut pg_sys::Query;
        (*k).targetList = std::ptr::null_mut();
        super::deparse_without_search_path(k)
    };
    let these = rows(sub);
    let value = pg::list::<pg_sys::TargetEntry>((*sub).targetList)[0];
    for (i, rte) in pg::list::<pg_sys::RangeTblEntry>((*q).rtable).into_iter().enumerate() {
        let alias = if (*rte).alias.is_null() { String::new() } else { pg::cstr((*(*rte).alias).aliasname) };
        let k = (*rte).subquery;
        if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY
            || !alias.starts_with("scalar_")
            || !one_row_aggregate(k)
            || !no_junk(k)
            || rows(k) != these
        {
            continue;
        }
        let rt = (i + 1) as i32;
        let e: *mut pg_sys::Node = (*value).expr.cast();
        let var = |n: usize| pg_sys::makeVar(rt, n as i16, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0);
        let targets = pg::list::<pg_sys::TargetEntry>((*k).targetList);
        if let Some(j) = targets.iter().position(|t| pg_sys::equal((**t).expr.cast(), e.cast())) {
            return Some(var(j + 1));
        }
        let n = targets.len() + 1;
        let name = std::ffi::CString::new(format!("__tide_v{n}")).expect("no NUL");
        let name = pg_sys::pstrdup(name.as_ptr());
        (*k).targetList = pg_sys::lappend((*k).targetList, pg_sys::makeTargetEntry(e.cast(), n as i16, name, false).cast());
        (*(*rte).eref).colnames = pg_sys::lappend((*(*rte).eref).colnames, pg_sys::makeString(name).cast());
        return Some(var(n));
    }
    None
}

/// A Var for the first output column of sub-query `sub` at range table entry `rt`.
unsafe fn output_var(sub: *mut pg_sys::Query, rt: i32) -> *mut pg_sys::Var {
    let t = pg::list::<pg_sys::TargetEntry>((*sub).targetList)[0];
    let e = (*t).expr.cast();
    pg_sys::makeVar(rt, 1, pg_sys::exprType(e), pg_sys::exprTypmod(e), pg_sys::exprCollation(e), 0)
}

/// A correlated one-row sub-query grouped by its correlated columns: its
/// values (its columns), then the inner side of each correlation `k1..km`, with
/// the correlation (operator, outer expression at the enclosing level, outer
/// is left, inner expression). None unless it is correlated by equalities
/// in its WHERE only.
pub(super) unsafe fn grouped_by_correlation(sub: *mut pg_sys::Query) -> Option<(*mut pg_sys::Query, Vec<CorrelatedPair>)> {
    // Its WHERE: correlation as equalities, the rest its own.
    let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    let correlation = Correlation::of(k)?;
    if !correlation.equalities_only() || correlation.refs.is_empty() {
        return None;
    }
    (*(*k).jointree).quals = correlation.own_quals();
    // Output: the values, then the correlated columns, grouped by them.
    let values = pg_sys::list_length((*k).targetList) as usize;
    let mut group: *mut pg_sys::List = std::ptr::null_mut();
    for (i, (_, _, _, inner)) in correlation.refs.iter().enumerate() {
        let name = std::ffi::CString::new(format!("k{}", i + 1)).expect("no NUL");
        let te = pg_sys::makeTargetEntry((*inner).cast(), (values + i + 1) as i16, pg_sys::pstrdup(name.as_ptr()), false);
        (*te).ressortgroupref = (i + 1) as pg_sys::Index;
        (*k).targetList = pg_sys::lappend((*k).targetList, te.cast());
        group = pg_sys::lappend(group, sort_group_clause(*inner, (i + 1) as pg_sys::Index).cast());
    }
    (*k).groupClause = group;
    if pg_sys::contain_vars_of_level(k.cast(), 1) {
        return None;
    }
    Some((k, correlation.refs))
}

/// A correlation of a sub-query: (operator, outer expression moved to the
/// enclosing level, outer is left, inner expression).
pub(super) type CorrelatedPair = (*mut pg_sys::OpExpr, *mut pg_sys::Node, bool, *mut pg_sys::Node);

/// For a conjunct `x <op> (correlated one-row sub-query)` with a strict
/// operator, the sub-query's value NULL over no rows: the operand's position
/// and the sub-query.
unsafe fn compared_scalar(c: *mut pg_sys::Node) -> Option<(usize, *mut pg_sys::Query)> {
    if !pg::is_a(c, pg_sys::NodeTag::T_OpExpr) {
        return None;
    }
    let op = c as *mut pg_sys::OpExpr;
    if !pg_sys::func_strict((*op).opfuncid) {
        return None;
    }
    let args: Vec<*mut pg_sys::Node> = pg::list((*op).args);
    let position = args.iter().position(|a| sublink(*a, pg_sys::SubLinkType::EXPR_SUBLINK).is_some())?;
    let sub = sublink(args[position], pg_sys::SubLinkType::EXPR_SUBLINK)?;
    if !one_row_aggregate(sub) || !pg_sys::contain_vars_of_level(sub.cast(), 1) {
        return None;
    }
    let target = pg::list::<pg_sys::TargetEntry>((*sub).targetList)[0];
    null_when_empty((*target).expr.cast()).then_some((position, sub))
}

/// Whether `unnest` joins WHERE conjunct `c`'s correlated scalar sub-query
/// (see `correlated_scalar`).
pub(super) unsafe fn joins_compared_scalar(c: *mut pg_sys::Node) -> bool {
    compared_scalar(c).is_some_and(|(_, sub)| grouped_by_correlation(sub).is_some())
}

/// A WHERE conjunct `x <op> (correlated scalar sub-query)` with a strict
/// operator: the sub-query grouped by its correlated columns, joined on
/// them, and the conjunct comparing with its output column.
unsafe fn correlated_scalar(q: *mut pg_sys::Query, c: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    let (position, sub) = compared_scalar(c)?;
    let args: Vec<*mut pg_sys::Node> = pg::list((*(c as *mut pg_sys::OpExpr)).args);
    let (k, correlated) = grouped_by_correlation(sub)?;
    let rt = add_subquery(q, k, "scalar");
    (*(*q).jointree).fromlist = pg_sys::lappend((*(*q).jointree).fromlist, range_table_ref(rt).cast());
    let keys = Keys { query: k, pairs: correlated.iter().map(|(eq, outer, left, _)| (*eq, *outer, *left)).collect() };
    // The key columns follow the value: shift by one.
    let mut conds: Vec<*mut pg_sys::Node> = keys.equalities(rt);
    for (i, cond) in conds.iter_mut().enumerate() {
        for a in pg::list::<pg_sys::Node>((*(*cond as *mut pg_sys::OpExpr)).args) {
            let v = a as *mut pg_sys::Var;
            if pg::is_a(a, pg_sys::NodeTag::T_Var) && (*v).varno == rt {
                // varattnosyn is what ruleutils prints.
                (*v).varattno = (i + 2) as i16;
                (*v).varattnosyn = (i + 2) as i16;
            }
        }
    }
    let compared = pg_sys::copyObjectImpl(c.cast()) as *mut pg_sys::OpExpr;
    let mut new_args: *mut pg_sys::List = std::ptr::null_mut();
    for (i, a) in args.iter().enumerate() {
        let a = if i == position { output_var(k, rt).cast() } else { *a };
        new_args = pg_sys::lappend(new_args, a.cast());
    }
    (*compared).args = new_args;
    conds.push(compared.cast());
    let mut l: *mut pg_sys::List = std::ptr::null_mut();
    for c in conds {
        l = pg_sys::lappend(l, c.cast());
    }
    Some(pg_sys::make_ands_explicit(l).cast())
}

/// An expression that is NULL when computed over no rows: aggregates that
/// are NULL then (all but count), under strict operators and functions,
/// with constants.
pub(super) unsafe fn null_when_empty(e: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    match (*e).type_ {
        T_Aggref => empty_aggregate(e as *mut pg_sys::Aggref) == Some(None),
        T_OpExpr => {
            let op = e as *mut pg_sys::OpExpr;
            pg_sys::func_strict((*op).opfuncid) && args_ok((*op).args)
        }
        T_FuncExpr => {
            let f = e as *mut pg_sys::FuncExpr;
            pg_sys::func_strict((*f).funcid) && args_ok((*f).args)
        }
        T_RelabelType => null_when_empty((*(e as *mut pg_sys::RelabelType)).arg.cast()),
        _ => false,
    }
}

/// The value of an aggregate over no rows, for PostgreSQL's own: Some(None)
/// for NULL (all but the counts), Some(Some(0)) for count and regr_count;
/// None for other aggregates (an initial state may make it anything).
pub(super) unsafe fn empty_aggregate(a: *mut pg_sys::Aggref) -> Option<Option<i64>> {
    if pg_sys::get_func_namespace((*a).aggfnoid).to_u32() != pg_sys::PG_CATALOG_NAMESPACE {
        return None;
    }
    match pg::cstr(pg_sys::get_func_name((*a).aggfnoid)).as_str() {
        "count" | "regr_count" => Some(Some(0)),
        _ => Some(None),
    }
}

/// Every argument is NULL over no rows or aggregates nothing (a constant,
/// say), and at least one is NULL so.
unsafe fn args_ok(args: *mut pg_sys::List) -> bool {
    let args: Vec<*mut pg_sys::Node> = pg::list(args);
    args.iter().all(|a| !pg_sys::contain_agg_clause(*a) || null_when_empty(*a)) && args.iter().any(|a| null_when_empty(*a))
}

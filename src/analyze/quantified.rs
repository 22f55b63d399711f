//! Sub-links that `sublinks` does not join, written again as comparisons
//! with scalar sub-queries that aggregate, which `select_scalars` and
//! `sublinks` maintain (grouped by their correlation and joined on it):
//!
//! - `EXISTS (S)` in the select list, in CASE, under OR or NOT:
//!   `(SELECT count(*) FROM <S's FROM> WHERE <S's WHERE>) > 0`.
//! - `EXISTS (S)` correlated by equalities and one ordering comparison
//!   (`s.k = t.k AND s.d > t.d`), wherever it is: the comparison moves
//!   out, against the extreme that decides it: `t.d < (SELECT max(s.d) ...
//!   WHERE s.k = t.k)`.
//! - `x op ANY (S)` and `x op ALL (S)` for a btree operator (`<`, `<=`,
//!   `=`, `>=`, `>`, `<>`), correlated or not, `NOT IN` among them, with
//!   SQL's NULL semantics. ANY is true when a row compares true, NULL when
//!   none does but a comparison is NULL, false otherwise:
//!
//!   ```text
//!   x op ANY (S)  =  n > 0 AND (E OR ((x IS NULL OR n_y < n) AND NULL))
//!   ```
//!
//!   with n and n_y the counts of S's rows and of its non-NULL y, and E
//!   whether some y compares true: `x op min(y)` or `x op max(y)` (the
//!   extreme that compares true first), `x <> min(y) OR x <> max(y)` for
//!   `<>`, and the count of the rows with `y = x` above 0 for `=` (that
//!   equality is a correlation more). `x op ALL (S)` is `NOT (x op' ANY
//!   (S))`, op' the negator. Where NULL drops a row as false does (WHERE,
//!   under AND and OR), ANY is E alone.
//!
//! - A scalar sub-query with `ORDER BY ... LIMIT 1`, correlated by
//!   equalities: a lookup among its rows ranked per key (`topk::scalar_as_lookup`).
//!
//! A sub-link of another shape stays, and is refused by name.

use super::sublinks::{self, Correlation};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// int8 `<`, `<=` and `>` (pg_operator.dat).
pub(super) const INT8_LT: u32 = 412;
pub(super) const INT8_LE: u32 = 414;
pub(super) const INT8_GT: u32 = 413;

/// btree strategies (`RowCompareType`): `<`, `<=`, `=`, `>=`, `>`, and the
/// negator of an equality.
const LT: i32 = 1;
const LE: i32 = 2;
const EQ: i32 = 3;
const NE: i32 = 6;

/// Rewrite the sub-links of `q`'s select list, WHERE and HAVING as described above.
///
/// # Safety
/// `q` must be an analyzed SELECT Query of pg_tide's own (it is changed in place).
pub(super) unsafe fn as_aggregates(q: *mut pg_sys::Query) {
    if !(*q).hasSubLinks {
        return;
    }
    for t in pg::list::<pg_sys::TargetEntry>((*q).targetList) {
        (*t).expr = rewrite((*t).expr.cast(), false).cast();
    }
    // (HAVING takes uncorrelated scalar sub-queries only: see `having`.)
    let mut links = Vec::new();
    super::to_ir::collect((*q).havingQual, pg_sys::NodeTag::T_SubLink, &mut links);
    if links.iter().all(|l| !pg_sys::contain_vars_of_level((*(*l as *mut pg_sys::SubLink)).subselect, 1)) {
        (*q).havingQual = rewrite((*q).havingQual, true);
    }
    if (*q).jointree.is_null() || (*(*q).jointree).quals.is_null() {
        return;
    }
    let mut conjuncts: *mut pg_sys::List = std::ptr::null_mut();
    for c in pg::list::<pg_sys::Node>(pg_sys::make_ands_implicit((*(*q).jointree).quals.cast())) {
        drop_exists_limit(c);
        let c = if sublinks::joined(c) { c } else { rewrite(c, true) };
        conjuncts = pg_sys::lappend(conjuncts, c.cast());
    }
    (*(*q).jointree).quals = pg_sys::make_ands_explicit(conjuncts).cast();
}

/// `node` with its sub-links rewritten; `positive` where a NULL result
/// drops the row as false does.
unsafe fn rewrite(node: *mut pg_sys::Node, positive: bool) -> *mut pg_sys::Node {
    if node.is_null() || pg::is_a(node, pg_sys::NodeTag::T_Query) {
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_BoolExpr) {
        let b = node as *mut pg_sys::BoolExpr;
        let positive = positive && (*b).boolop != pg_sys::BoolExprType::NOT_EXPR;
        let mut args: *mut pg_sys::List = std::ptr::null_mut();
        for a in pg::list::<pg_sys::Node>((*b).args) {
            args = pg_sys::lappend(args, rewrite(a, positive).cast());
        }
        (*b).args = args;
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_SubLink) {
        let link = node as *mut pg_sys::SubLink;
        let rewritten = match (*link).subLinkType {
            pg_sys::SubLinkType::EXISTS_SUBLINK => {
                drop_exists_limit(node);
                exists((*link).subselect.cast(), positive)
            }
            pg_sys::SubLinkType::ANY_SUBLINK => quantified(link, positive, false),
            pg_sys::SubLinkType::ALL_SUBLINK => quantified(link, positive, true),
            pg_sys::SubLinkType::EXPR_SUBLINK => super::topk::scalar_as_lookup((*link).subselect.cast()).map(|lookup| {
                (*link).subselect = lookup.cast();
                node
            }),
            _ => None,
        };
        // (A sub-link's own sub-query is its own; it is not entered.)
        return rewritten.unwrap_or(node);
    }
    pg::mutate_children(node, rewrite_mutator, std::ptr::null_mut())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn rewrite_mutator(node: *mut pg_sys::Node, _ctx: *mut c_void) -> *mut pg_sys::Node {
    rewrite(node, false)
}

/// A sub-query whose rows are those of its FROM and WHERE, one per row
/// (with its own sub-links): no grouping, aggregates, windows, set
/// operations, set-returning functions or CTEs. Its DISTINCT, ORDER BY and
/// LIMIT are the caller's to judge.
pub(super) unsafe fn row_per_row(sub: *mut pg_sys::Query) -> bool {
    (*sub).commandType == pg_sys::CmdType::CMD_SELECT
        && (*sub).setOperations.is_null()
        && (*sub).cteList.is_null()
        && !(*sub).hasAggs
        && (*sub).groupClause.is_null()
        && (*sub).groupingSets.is_null()
        && (*sub).havingQual.is_null()
        && !(*sub).hasWindowFuncs
        && !(*sub).hasTargetSRFs
        && !(*sub).jointree.is_null()
}

/// A sub-query whose rows the aggregates below can count and compare (its
/// DISTINCT changes neither; DISTINCT ON and LIMIT change which rows).
unsafe fn plain(sub: *mut pg_sys::Query) -> bool {
    row_per_row(sub) && !(*sub).hasDistinctOn && (*sub).limitOffset.is_null() && (*sub).limitCount.is_null()
}

/// `EXISTS (... LIMIT n)` with a constant n ≥ 1 is `EXISTS (...)`: the
/// LIMIT goes, in place.
unsafe fn drop_exists_limit(node: *mut pg_sys::Node) {
    let mut n = node;
    if pg::is_a(n, pg_sys::NodeTag::T_BoolExpr) && (*(n as *mut pg_sys::BoolExpr)).boolop == pg_sys::BoolExprType::NOT_EXPR {
        n = pg::list::<pg_sys::Node>((*(n as *mut pg_sys::BoolExpr)).args)[0];
    }
    if !pg::is_a(n, pg_sys::NodeTag::T_SubLink) || (*(n as *mut pg_sys::SubLink)).subLinkType != pg_sys::SubLinkType::EXISTS_SUBLINK {
        return;
    }
    let sub = (*(n as *mut pg_sys::SubLink)).subselect as *mut pg_sys::Query;
    if (*sub).limitCount.is_null() || !(*sub).limitOffset.is_null() || (*sub).limitOption != pg_sys::LimitOption::LIMIT_OPTION_COUNT {
        return;
    }
    if super::topk::constant((*sub).limitCount).is_some_and(|n| n >= 1) {
        (*sub).limitCount = std::ptr::null_mut();
    }
}

/// `EXISTS (sub)` as a count, or as a comparison with an extreme (see above).
unsafe fn exists(sub: *mut pg_sys::Query, positive: bool) -> Option<*mut pg_sys::Node> {
    if !plain(sub) {
        return None;
    }
    let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    let correlation = Correlation::of(k)?;
    let (others, equal): (Vec<_>, Vec<_>) = correlation.refs.iter().partition(|(op, ..)| sublinks::equality((*op).cast()).is_none());
    match others.as_slice() {
        [] => Some(above_zero(scalar(k, count(None)))),
        [(op, outer, outer_left, inner)] => {
            // The sub-query without that comparison.
            let mut quals = correlation.inner_only;
            for (eq, ..) in &equal {
                quals = pg_sys::lappend(quals, (*eq).cast());
            }
            (*(*k).jointree).quals = if quals.is_null() { std::ptr::null_mut() } else { pg_sys::make_ands_explicit(quals).cast() };
            let compared =
                Comparison { op: (**op).opno, outer: *outer, inner: *inner, outer_left: *outer_left, collation: (**op).inputcollid };
            let some = compared.some_row(k)?;
            Some(if positive { some } else { is_true(some) })
        }
        _ => None,
    }
}

/// `x op ANY (sub)` (`all`: `x op ALL (sub)`) as described above.
unsafe fn quantified(link: *mut pg_sys::SubLink, positive: bool, all: bool) -> Option<*mut pg_sys::Node> {
    let sub: *mut pg_sys::Query = (*link).subselect.cast();
    if !plain(sub) {
        return None;
    }
    let k = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    // (Otherwise the counts below could not be grouped by the correlation.)
    if !Correlation::of(k)?.equalities_only() {
        return None;
    }
    let outputs: Vec<*mut pg_sys::Node> =
        pg::list::<pg_sys::TargetEntry>((*k).targetList).into_iter().filter(|t| !(**t).resjunk).map(|t| (*t).expr.cast()).collect();
    let test = (*link).testexpr;
    // `(a, b) IN (SELECT ...)` where NULL is false: a count of the rows equal on every column.
    if pg::is_a(test, pg_sys::NodeTag::T_BoolExpr) {
        let b = test as *mut pg_sys::BoolExpr;
        if all || !positive || (*b).boolop != pg_sys::BoolExprType::AND_EXPR {
            return None;
        }
        let mut equalities = Vec::new();
        for c in pg::list::<pg_sys::Node>((*b).args) {
            let compared = Comparison::of(c, &outputs)?;
            if compared.strategy()? != EQ {
                return None;
            }
            equalities.push(compared);
        }
        return Some(above_zero(scalar(with_conditions(k, &equalities), count(None))));
    }
    let mut compared = Comparison::of(test, &outputs)?;
    if all {
        compared.op = pg_sys::get_negator(compared.op);
        if compared.op == pg_sys::InvalidOid {
            return None;
        }
    }
    let some = compared.some_row(k)?;
    if positive && !all {
        return Some(some);
    }
    // n > 0 AND (E OR ((x IS NULL OR n_y < n) AND NULL))
    let n = || scalar(k, count(None));
    let n_y = scalar(k, count(Some(compared.inner)));
    let unknown = or(vec![is_null(compared.outer), int8_op(INT8_LT, n_y, n())]);
    let null = pg_sys::makeBoolConst(false, true);
    let any = and(vec![above_zero(n()), or(vec![some, and(vec![unknown, null])])]);
    Some(if all { not(any) } else { any })
}

/// A comparison `outer op inner` (or `inner op outer`) of an expression
/// of the query with one of a sub-query's rows.
struct Comparison {
    op: pg_sys::Oid,
    /// At the query's level.
    outer: *mut pg_sys::Node,
    /// At the sub-query's level.
    inner: *mut pg_sys::Node,
    outer_left: bool,
    /// The comparison's collation.
    collation: pg_sys::Oid,
}

impl Comparison {
    /// A sub-link's test `x op <its output>`: the output's parameter
    /// replaced by its expression. None for other tests.
    unsafe fn of(test: *mut pg_sys::Node, outputs: &[*mut pg_sys::Node]) -> Option<Comparison> {
        if !pg::is_a(test, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = test as *mut pg_sys::OpExpr;
        let args: Vec<*mut pg_sys::Node> = pg::list((*op).args);
        if args.len() != 2 {
            return None;
        }
        let (outer, inner, outer_left) = match (params(args[0]), params(args[1])) {
            (0, 1) => (args[0], args[1], true),
            (1, 0) => (args[1], args[0], false),
            _ => return None,
        };
        if pg_sys::contain_vars_of_level(outer, 1) || super::to_ir::contains(outer, pg_sys::NodeTag::T_SubLink) {
            return None;
        }
        let mut ctx = Outputs { outputs: outputs.to_vec(), failed: false };
        let inner = output_mutator(pg_sys::copyObjectImpl(inner.cast()).cast(), (&mut ctx as *mut Outputs).cast());
        if ctx.failed || pg_sys::contain_vars_of_level(inner, 1) {
            return None;
        }
        Some(Comparison { op: (*op).opno, outer, inner, outer_left, collation: (*op).inputcollid })
    }

    /// The btree strategy of the operator in the family of the inner side's
    /// type that its min and max use (or NE); None for other operators,
    /// non-strict ones, and comparisons under another collation.
    unsafe fn strategy(&self) -> Option<i32> {
        if !pg_sys::func_strict(pg_sys::get_opcode(self.op)) || pg_sys::type_is_rowtype(pg_sys::exprType(self.outer)) {
            return None;
        }
        let ty = pg_sys::getBaseType(pg_sys::exprType(self.inner));
        // min and max compare under the value's collation.
        if pg_sys::type_is_collatable(ty) && self.collation != pg_sys::exprCollation(self.inner) {
            return None;
        }
        let class = pg_sys::GetDefaultOpClass(ty, pg_sys::BTREE_AM_OID);
        if class == pg_sys::InvalidOid {
            return None;
        }
        let family = pg_sys::get_opclass_family(class);
        pg::list::<pg_sys::OpBtreeInterpretation>(pg_sys::get_op_btree_interpretation(self.op))
            .into_iter()
            .find(|i| (**i).opfamily_id == family)
            .map(|i| (*i).strategy)
    }

    /// Whether some row of `k` (the sub-query, its rows as they compare)
    /// compares true: against the extreme that compares true first, or a
    /// count of the equal rows.
    unsafe fn some_row(&self, k: *mut pg_sys::Query) -> Option<*mut pg_sys::Node> {
        let strategy = self.strategy()?;
        if strategy == EQ {
            return Some(above_zero(scalar(with_conditions(k, std::slice::from_ref(self)), count(None))));
        }
        let (min, max) = (extreme(k, self.inner, "min")?, extreme(k, self.inner, "max"));
        if strategy == NE {
            return Some(or(vec![self.against(min), self.against(max?)]));
        }
        // outer < inner for some inner: outer < max(inner); inner < outer: min(inner) < outer.
        let below = strategy == LT || strategy == LE;
        Some(self.against(if below == self.outer_left { max? } else { min }))
    }

    /// The comparison with `value` (at the query's level) on the inner side.
    unsafe fn against(&self, value: *mut pg_sys::Node) -> *mut pg_sys::Node {
        // (A copy of the outer side each time: no node is in two places of the tree.)
        let outer = pg_sys::copyObjectImpl(self.outer.cast()) as *mut pg_sys::Node;
        let (l, r) = if self.outer_left { (outer, value) } else { (value, outer) };
        operator(self.op, l, r, self.collation)
    }

    /// The comparison inside the sub-query, the outer side one level up.
    unsafe fn inside(&self) -> *mut pg_sys::Node {
        let outer = pg_sys::copyObjectImpl(self.outer.cast()) as *mut pg_sys::Node;
        pg::increment_var_sublevels_up(outer, 1, 0);
        let inner = pg_sys::copyObjectImpl(self.inner.cast()) as *mut pg_sys::Node;
        let (l, r) = if self.outer_left { (outer, inner) } else { (inner, outer) };
        operator(self.op, l, r, self.collation)
    }
}

/// `k` with `comparisons` (inside it) added to its WHERE.
unsafe fn with_conditions(k: *mut pg_sys::Query, comparisons: &[Comparison]) -> *mut pg_sys::Query {
    let k = pg_sys::copyObjectImpl(k.cast()) as *mut pg_sys::Query;
    let quals = (*(*k).jointree).quals;
    let mut list = if quals.is_null() { std::ptr::null_mut() } else { pg_sys::make_ands_implicit(quals.cast()) };
    for c in comparisons {
        list = pg_sys::lappend(list, c.inside().cast());
    }
    (*(*k).jointree).quals = pg_sys::make_ands_explicit(list).cast();
    k
}

/// The number of PARAM_SUBLINK parameters in `node`.
unsafe fn params(node: *mut pg_sys::Node) -> usize {
    let mut found = Vec::new();
    super::to_ir::collect(node, pg_sys::NodeTag::T_Param, &mut found);
    found.into_iter().filter(|p| (*(*p as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_SUBLINK).count()
}

struct Outputs {
    outputs: Vec<*mut pg_sys::Node>,
    failed: bool,
}

/// A sub-link's output parameters replaced by the sub-query's expressions.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn output_mutator(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Param) && (*(node as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_SUBLINK {
        let ctx = &mut *(ctx as *mut Outputs);
        let n = (*(node as *mut pg_sys::Param)).paramid as usize;
        return match ctx.outputs.get(n.wrapping_sub(1)) {
            Some(e) => pg_sys::copyObjectImpl((*e).cast()).cast(),
            None => {
                ctx.failed = true;
                node
            }
        };
    }
    pg::mutate_children(node, output_mutator, ctx)
}

/// `(SELECT <aggregate> FROM <k's FROM> WHERE <k's WHERE>)`.
unsafe fn scalar(k: *mut pg_sys::Query, aggregate: *mut pg_sys::Aggref) -> *mut pg_sys::Node {
    let k = pg_sys::copyObjectImpl(k.cast()) as *mut pg_sys::Query;
    let name = c"v";
    (*k).targetList =
        pg_sys::lappend(std::ptr::null_mut(), pg_sys::makeTargetEntry(aggregate.cast(), 1, pg_sys::pstrdup(name.as_ptr()), false).cast());
    (*k).hasAggs = true;
    (*k).sortClause = std::ptr::null_mut();
    (*k).distinctClause = std::ptr::null_mut();
    (*k).hasDistinctOn = false;
    let link = pg_sys::palloc0(std::mem::size_of::<pg_sys::SubLink>()) as *mut pg_sys::SubLink;
    (*link).xpr.type_ = pg_sys::NodeTag::T_SubLink;
    (*link).subLinkType = pg_sys::SubLinkType::EXPR_SUBLINK;
    (*link).subselect = k.cast();
    (*link).location = -1;
    link.cast()
}

/// `count(*)`, or `count(arg)`.
unsafe fn count(arg: Option<*mut pg_sys::Node>) -> *mut pg_sys::Aggref {
    let f = catalog_function("count", &if arg.is_some() { vec![pg_sys::ANYOID] } else { Vec::new() }).expect("count is built in");
    aggregate(f, arg.map(|a| pg_sys::copyObjectImpl(a.cast()).cast()), pg_sys::InvalidOid)
}

/// `min(value)` or `max(value)` over `k`'s rows as a scalar sub-query, when
/// the value's type has that aggregate.
unsafe fn extreme(k: *mut pg_sys::Query, value: *mut pg_sys::Node, name: &str) -> Option<*mut pg_sys::Node> {
    let ty = pg_sys::exprType(value);
    let f = catalog_function(name, &[ty]).or_else(|| catalog_function(name, &[pg_sys::getBaseType(ty)]))?;
    let value = pg_sys::copyObjectImpl(value.cast()) as *mut pg_sys::Node;
    Some(scalar(k, aggregate(f, Some(value), pg_sys::exprCollation(value))))
}

/// The function `pg_catalog.name(args)`, if there is one.
unsafe fn catalog_function(name: &str, args: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    let schema = std::ffi::CString::new("pg_catalog").expect("no NUL");
    let name = std::ffi::CString::new(name).expect("no NUL");
    let mut names = pg_sys::lappend(std::ptr::null_mut(), pg_sys::makeString(pg_sys::pstrdup(schema.as_ptr())).cast());
    names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(name.as_ptr())).cast());
    let f = pg_sys::LookupFuncName(names, args.len() as i32, args.as_ptr(), true);
    (f != pg_sys::InvalidOid).then_some(f)
}

/// An aggregate call, as the parser makes it (the planner fills in the rest).
unsafe fn aggregate(f: pg_sys::Oid, arg: Option<*mut pg_sys::Node>, collation: pg_sys::Oid) -> *mut pg_sys::Aggref {
    let a = pg_sys::palloc0(std::mem::size_of::<pg_sys::Aggref>()) as *mut pg_sys::Aggref;
    (*a).xpr.type_ = pg_sys::NodeTag::T_Aggref;
    (*a).aggfnoid = f;
    (*a).aggtype = pg_sys::get_func_rettype(f);
    (*a).aggcollid = if pg_sys::type_is_collatable((*a).aggtype) { collation } else { pg_sys::InvalidOid };
    (*a).inputcollid = collation;
    (*a).aggstar = arg.is_none();
    if let Some(arg) = arg {
        (*a).aggargtypes = pg_sys::lappend_oid(std::ptr::null_mut(), pg_sys::exprType(arg));
        (*a).args = pg_sys::lappend(std::ptr::null_mut(), pg_sys::makeTargetEntry(arg.cast(), 1, std::ptr::null_mut(), false).cast());
    }
    (*a).aggkind = b'n' as std::ffi::c_char; // AGGKIND_NORMAL
    (*a).aggsplit = pg_sys::AggSplit::AGGSPLIT_SIMPLE;
    (*a).aggno = -1;
    (*a).aggtransno = -1;
    (*a).location = -1;
    a
}

unsafe fn operator(op: pg_sys::Oid, l: *mut pg_sys::Node, r: *mut pg_sys::Node, collation: pg_sys::Oid) -> *mut pg_sys::Node {
    let e = pg_sys::make_opclause(op, pg_sys::get_op_rettype(op), false, l.cast(), r.cast(), pg_sys::InvalidOid, collation)
        as *mut pg_sys::OpExpr;
    (*e).opfuncid = pg_sys::get_opcode(op);
    e.cast()
}

/// A comparison of two int8 expressions (`INT8_LT` ...).
pub(super) unsafe fn int8_op(op: u32, l: *mut pg_sys::Node, r: *mut pg_sys::Node) -> *mut pg_sys::Node {
    operator(pg_sys::Oid::from(op), l, r, pg_sys::InvalidOid)
}

/// An int8 constant.
pub(super) unsafe fn int8(v: i64) -> *mut pg_sys::Node {
    pg_sys::makeConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid, 8, pg_sys::Datum::from(v), false, true).cast()
}

/// `n > 0` for a count.
unsafe fn above_zero(n: *mut pg_sys::Node) -> *mut pg_sys::Node {
    int8_op(INT8_GT, n, int8(0))
}

unsafe fn bool_expr(kind: pg_sys::BoolExprType::Type, args: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for a in args {
        list = pg_sys::lappend(list, a.cast());
    }
    pg_sys::makeBoolExpr(kind, list, -1).cast()
}

unsafe fn and(args: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    bool_expr(pg_sys::BoolExprType::AND_EXPR, args)
}

unsafe fn or(args: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    bool_expr(pg_sys::BoolExprType::OR_EXPR, args)
}

unsafe fn not(arg: *mut pg_sys::Node) -> *mut pg_sys::Node {
    bool_expr(pg_sys::BoolExprType::NOT_EXPR, vec![arg])
}

unsafe fn is_null(arg: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let t = pg_sys::palloc0(std::mem::size_of::<pg_sys::NullTest>()) as *mut pg_sys::NullTest;
    (*t).xpr.type_ = pg_sys::NodeTag::T_NullTest;
    (*t).arg = pg_sys::copyObjectImpl(arg.cast()).cast();
    (*t).nulltesttype = pg_sys::NullTestType::IS_NULL;
    (*t).location = -1;
    t.cast()
}

unsafe fn is_true(arg: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let t = pg_sys::palloc0(std::mem::size_of::<pg_sys::BooleanTest>()) as *mut pg_sys::BooleanTest;
    (*t).xpr.type_ = pg_sys::NodeTag::T_BooleanTest;
    (*t).arg = arg.cast();
    (*t).booltesttype = pg_sys::BoolTestType::IS_TRUE;
    (*t).location = -1;
    t.cast()
}

//! Correlated scalar sub-queries in the select list, and in WHERE where
//! `sublinks` does not join them (`WHERE (SELECT count(*) ...) < 3`: a
//! count, 0 over no rows, or not compared by a strict operator), and
//! LATERAL sub-queries in FROM that aggregate without GROUP BY (one row per
//! row of the items before them, each column such a scalar):
//!
//! ```sql
//! SELECT c.id, (SELECT count(*) FROM o WHERE o.cust = c.id) AS orders FROM c
//! SELECT c.id, x.n, x.total FROM c, LATERAL (SELECT count(*) AS n, sum(o.amount) AS total FROM o WHERE o.cust = c.id) x
//! ```
//!
//! Each such sub-query is grouped by its correlated columns (an internal
//! view K, as a correlated one in WHERE is, see `sublinks`) and joined on
//! them with a LEFT JOIN, so that a row without a group is kept and shows
//! the sub-query's value over no rows (0 for count, NULL for most). The
//! query is written again as
//!
//! ```sql
//! SELECT <its columns, each such sub-query read from its K> FROM <its FROM>
//!   LEFT JOIN K1 ON ... LEFT JOIN K2 ON ... WHERE <its conditions>
//! ```
//!
//! and PostgreSQL analyzes that text; the LEFT JOIN is then maintained as
//! outer joins are. Each K has one row per key, so no row is repeated.

use super::plan::{from_clause, param};
use super::sublinks::{empty_aggregate, grouped_by_correlation, joins_compared_scalar, null_when_empty, one_row_aggregate};
use super::to_ir::{deparse, deparse_context};
use crate::delta::plan::substitute_params;
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// `q` written with its correlated scalar sub-queries in the select list
/// (and those in WHERE that `sublinks` does not join) as LEFT JOINs (see
/// above), or `q` itself when it has none or one that cannot be taken this
/// way (it stays, and is refused by name).
///
/// # Safety
/// `q` must be an analyzed (and rewritten) SELECT Query.
pub(super) unsafe fn as_left_joins(q: *mut pg_sys::Query) -> *mut pg_sys::Query {
    if grouped_with_scalars(q) {
        let nest = pg::push_search_path(c"");
        let sql = written_over_groups(q);
        pg_sys::AtEOXact_GUC(true, nest);
        return sql.map(|sql| super::parse_query(&sql)).unwrap_or(q);
    }
    // A query whose select list is computed once per row of its FROM and
    // WHERE (no aggregates, DISTINCT, LIMIT, windows or set operations over
    // the select list), and whose sub-queries need no CTE of it.
    if (!(*q).hasSubLinks && lateral_aggregates(q).is_empty())
        || !(*q).setOperations.is_null()
        || (*q).hasAggs
        || !(*q).groupClause.is_null()
        || !(*q).groupingSets.is_null()
        || !(*q).havingQual.is_null()
        || !(*q).distinctClause.is_null()
        || !(*q).limitCount.is_null()
        || !(*q).limitOffset.is_null()
        || (*q).hasWindowFuncs
        || (*q).hasTargetSRFs
        || !(*q).cteList.is_null()
        || (*q).jointree.is_null()
        || (*(*q).jointree).fromlist.is_null()
    {
        return q;
    }
    // Written with every name qualified: the text is analyzed again, also
    // where another search_path is set.
    let nest = pg::push_search_path(c"");
    let sql = written_with_joins(q);
    pg_sys::AtEOXact_GUC(true, nest);
    match sql {
        Some(sql) => super::parse_query(&sql),
        None => q,
    }
}

unsafe fn written_with_joins(q: *mut pg_sys::Query) -> Option<String> {
    let (_, namespaces) = deparse_context(q, std::ptr::null_mut());
    let mut ctx = Lift { q, namespaces, texts: Vec::new(), joins: Vec::new(), columns: Vec::new(), groups: None, failed: false };
    // LATERAL sub-queries that aggregate: one LEFT JOIN each, their columns
    // read from it (and the item left out of FROM).
    let laterals = lateral_aggregates(q);
    for &rt in &laterals {
        let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
        if !ctx.lateral(rt, (*rte).subquery) {
            return None;
        }
    }
    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    let lifted: Vec<*mut pg_sys::Node> = targets.iter().map(|t| lift((**t).expr.cast(), (&mut ctx as *mut Lift).cast())).collect();
    // WHERE conditions with a correlated sub-query `sublinks` does not join.
    let quals = (*(*q).jointree).quals;
    let conjuncts: Vec<*mut pg_sys::Node> = if quals.is_null() { Vec::new() } else { pg::list(pg_sys::make_ands_implicit(quals.cast())) };
    let conditions: Vec<*mut pg_sys::Node> = conjuncts
        .into_iter()
        .map(|c| {
            // (With LATERAL ones, every condition: any may read their columns.)
            if !laterals.is_empty() || (correlated_scalars_only(c) && !joins_compared_scalar(c)) {
                lift(c, (&mut ctx as *mut Lift).cast())
            } else {
                c
            }
        })
        .collect();
    if ctx.failed || ctx.joins.is_empty() {
        return None;
    }
    let select = ctx.select_list(&lifted, &targets);
    // FROM items joined explicitly, so that the LEFT JOINs see them all.
    let items: Vec<*mut pg_sys::Node> = from_items(q)
        .into_iter()
        .filter(|&item| {
            !(pg::is_a(item, pg_sys::NodeTag::T_RangeTblRef) && laterals.contains(&(*(item as *mut pg_sys::RangeTblRef)).rtindex))
        })
        .collect();
    // (No other item may read the LATERAL ones.)
    if items.is_empty() || (!laterals.is_empty() && items.iter().any(|&i| has_lateral(q, i))) {
        return None;
    }
    let one = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let each: Vec<String> = items
        .iter()
        .map(|&item| {
            (*(*one).jointree).fromlist = pg_sys::lappend(std::ptr::null_mut(), item.cast());
            let alone = pg_sys::copyObjectImpl(one.cast()) as *mut pg_sys::Query;
            super::outer::forget_absent_joins(alone);
            from_clause(alone)
        })
        .collect();
    let from = if each.len() == 1 { each[0].clone() } else { format!("({})", each.join(" CROSS JOIN ")) };
    let mut sql = format!("SELECT {select} FROM {from}");
    sql.push_str(&ctx.left_joins());
    if !conditions.is_empty() {
        let parts: Vec<String> = conditions.iter().map(|c| format!("({})", ctx.written(*c))).collect();
        sql.push_str(&format!(" WHERE {}", parts.join(" AND ")));
    }
    Some(sql)
}

/// The alias of the groups' query under the joins.
const GROUPS: &str = "__tide_groups";

/// A grouped query (GROUP BY or aggregates) with sub-queries in its select
/// list only: they are computed over its groups, as in
/// `SELECT <its columns> FROM (<the query, its columns what they read>) G
/// LEFT JOIN K ... ` (uncorrelated ones are then joined by `sublinks`).
unsafe fn grouped_with_scalars(q: *mut pg_sys::Query) -> bool {
    let in_targets = pg::list::<pg_sys::TargetEntry>((*q).targetList)
        .into_iter()
        .any(|t| !(*t).resjunk && super::to_ir::contains((*t).expr.cast(), pg_sys::NodeTag::T_SubLink));
    in_targets
        && ((*q).hasAggs || !(*q).groupClause.is_null())
        && (*q).groupingSets.is_null()
        && (*q).setOperations.is_null()
        && (*q).distinctClause.is_null()
        && (*q).limitCount.is_null()
        && (*q).limitOffset.is_null()
        && !(*q).hasWindowFuncs
        && !(*q).hasTargetSRFs
        && (*q).cteList.is_null()
        && !(*q).jointree.is_null()
        && !super::to_ir::contains((*q).havingQual, pg_sys::NodeTag::T_SubLink)
}

unsafe fn written_over_groups(q: *mut pg_sys::Query) -> Option<String> {
    let (_, namespaces) = deparse_context(q, std::ptr::null_mut());
    let all: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let keys: Vec<*mut pg_sys::Node> = pg::list::<pg_sys::SortGroupClause>((*q).groupClause)
        .into_iter()
        .filter_map(|g| all.iter().find(|t| (***t).ressortgroupref == (*g).tleSortGroupRef).map(|t| (**t).expr.cast()))
        .collect();
    let groups = Groups { columns: Vec::new(), keys };
    let mut ctx = Lift { q, namespaces, texts: Vec::new(), joins: Vec::new(), columns: Vec::new(), groups: Some(groups), failed: false };
    let targets: Vec<*mut pg_sys::TargetEntry> = all.iter().copied().filter(|t| !(**t).resjunk).collect();
    let lifted: Vec<*mut pg_sys::Node> = targets.iter().map(|t| lift((**t).expr.cast(), (&mut ctx as *mut Lift).cast())).collect();
    if ctx.failed {
        return None;
    }
    let select = ctx.select_list(&lifted, &targets);
    // G: the query with the columns read above it, its GROUP BY keys kept
    // (hidden) for its GROUP BY clause.
    let g = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    let columns = &ctx.groups.as_ref().expect("over the groups").columns;
    for (i, e) in columns.iter().enumerate() {
        let name = std::ffi::CString::new(format!("c{}", i + 1)).expect("no NUL");
        list = pg_sys::lappend(list, pg_sys::makeTargetEntry((*e).cast(), (i + 1) as i16, pg_sys::pstrdup(name.as_ptr()), false).cast());
    }
    for t in all.iter().filter(|t| (***t).ressortgroupref != 0) {
        let key = pg_sys::copyObjectImpl((*t).cast()) as *mut pg_sys::TargetEntry;
        (*key).resjunk = true;
        (*key).resno = (pg_sys::list_length(list) + 1) as i16;
        list = pg_sys::lappend(list, key.cast());
    }
    (*g).targetList = list;
    (*g).sortClause = std::ptr::null_mut();
    let mut sql = format!("SELECT {select} FROM ({}) {GROUPS}", super::deparse_without_search_path(g));
    sql.push_str(&ctx.left_joins());
    Some(sql)
}

/// The range table indexes of the LATERAL sub-queries in FROM (at its top,
/// not under a join) that aggregate without GROUP BY: one row for each row
/// of the items before them.
unsafe fn lateral_aggregates(q: *mut pg_sys::Query) -> Vec<i32> {
    if (*q).jointree.is_null() {
        return Vec::new();
    }
    from_items(q)
        .into_iter()
        .filter(|&item| pg::is_a(item, pg_sys::NodeTag::T_RangeTblRef))
        .map(|item| (*(item as *mut pg_sys::RangeTblRef)).rtindex)
        .filter(|&rt| {
            let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
            (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY
                && (*rte).lateral
                && one_row_aggregate((*rte).subquery)
                && pg_sys::contain_vars_of_level((*rte).subquery.cast(), 1)
        })
        .collect()
}

/// The items of `q`'s FROM, cross joins (`a CROSS JOIN LATERAL (...) x`,
/// an inner join ON true) taken apart into their arms, in order.
unsafe fn from_items(q: *mut pg_sys::Query) -> Vec<*mut pg_sys::Node> {
    unsafe fn split(item: *mut pg_sys::Node, out: &mut Vec<*mut pg_sys::Node>) {
        if pg::is_a(item, pg_sys::NodeTag::T_JoinExpr) {
            let j = item as *mut pg_sys::JoinExpr;
            if (*j).jointype == pg_sys::JoinType::JOIN_INNER
                && super::sublinks::always_true((*j).quals)
                && (*j).alias.is_null()
                && (*j).usingClause.is_null()
            {
                split((*j).larg, out);
                split((*j).rarg, out);
                return;
            }
        }
        out.push(item);
    }
    let mut out = Vec::new();
    for item in pg::list::<pg_sys::Node>((*(*q).jointree).fromlist) {
        split(item, &mut out);
    }
    out
}

/// Whether join tree item `item` has a LATERAL item (which may read the
/// items before it).
unsafe fn has_lateral(q: *mut pg_sys::Query, item: *mut pg_sys::Node) -> bool {
    if pg::is_a(item, pg_sys::NodeTag::T_RangeTblRef) {
        let rte = pg_sys::list_nth((*q).rtable, (*(item as *mut pg_sys::RangeTblRef)).rtindex - 1) as *mut pg_sys::RangeTblEntry;
        (*rte).lateral
    } else if pg::is_a(item, pg_sys::NodeTag::T_JoinExpr) {
        let j = item as *mut pg_sys::JoinExpr;
        has_lateral(q, (*j).larg) || has_lateral(q, (*j).rarg)
    } else {
        true
    }
}

/// Whether every sub-query of `c` that refers to the query is a one-row
/// scalar one (and there is one).
unsafe fn correlated_scalars_only(c: *mut pg_sys::Node) -> bool {
    let mut links = Vec::new();
    super::to_ir::collect(c, pg_sys::NodeTag::T_SubLink, &mut links);
    let correlated: Vec<*mut pg_sys::SubLink> =
        links.into_iter().map(|l| l as *mut pg_sys::SubLink).filter(|&l| pg_sys::contain_vars_of_level((*l).subselect, 1)).collect();
    !correlated.is_empty()
        && correlated.iter().all(|&l| {
            let sub = (*l).subselect as *mut pg_sys::Query;
            (*l).subLinkType == pg_sys::SubLinkType::EXPR_SUBLINK && (one_row_aggregate(sub) || !as_counted_value(sub).is_null())
        })
}

/// What `lift` collects.
struct Lift {
    q: *mut pg_sys::Query,
    /// ruleutils' namespaces for `q`'s expressions.
    namespaces: *mut pg_sys::List,
    /// The text each placeholder `$n` stands for.
    texts: Vec<String>,
    joins: Vec<Join>,
    /// The columns of LATERAL aggregating sub-queries: (range table index,
    /// column number, the placeholder's text).
    columns: Vec<(i32, i16, String)>,
    /// Over the groups of a grouped query: the expressions the groups'
    /// query G shows as its columns `c1..cn` (see `written_over_groups`).
    groups: Option<Groups>,
    /// A sub-query refers to the query in another way: the query stays.
    failed: bool,
}

/// One LEFT JOIN: the grouped sub-query, its alias, the condition (over placeholders).
struct Join {
    /// K: its value columns `v1..vn`, then its keys `k1..km`.
    query: *mut pg_sys::Query,
    /// K without its values, and the expressions its keys equal: sub-queries
    /// with the same one share K (each adds its values).
    signature: String,
    alias: String,
    on: String,
    values: usize,
}

/// The groups' query's columns (see `written_over_groups`).
struct Groups {
    columns: Vec<*mut pg_sys::Node>,
    /// The GROUP BY expressions.
    keys: Vec<*mut pg_sys::Node>,
}

impl Lift {
    /// Expression `e` of the query as SQL, its placeholders written out.
    unsafe fn written(&self, e: *mut pg_sys::Node) -> String {
        substitute_params(&deparse(self.q, self.namespaces, e, false), &|n| self.texts[n - 1].clone())
    }

    /// The select list: the query's columns over the joins, by their names.
    unsafe fn select_list(&self, lifted: &[*mut pg_sys::Node], targets: &[*mut pg_sys::TargetEntry]) -> String {
        let columns: Vec<String> = lifted
            .iter()
            .zip(targets)
            .map(|(e, t)| format!("{} AS {}", self.written(*e), pg::quote_ident(&pg::cstr((**t).resname))))
            .collect();
        columns.join(", ")
    }

    /// ` LEFT JOIN (K) alias ON ...` for each grouped sub-query.
    unsafe fn left_joins(&self) -> String {
        self.joins
            .iter()
            .map(|j| {
                let query = super::deparse_without_search_path(j.query);
                format!(" LEFT JOIN ({query}) {} ON {}", j.alias, substitute_params(&j.on, &|n| self.texts[n - 1].clone()))
            })
            .collect()
    }

    /// A placeholder for the column of G showing `expr` (added if new);
    /// with `key_only`, None unless `expr` is a GROUP BY expression or made
    /// of them (a correlation must be by group keys).
    unsafe fn group_column(&mut self, expr: *mut pg_sys::Node, key_only: bool) -> Option<*mut pg_sys::Node> {
        let g = self.groups.as_mut()?;
        if key_only && !g.keys.iter().any(|&k| pg_sys::equal(k.cast(), expr.cast())) {
            let mut vars = Vec::new();
            super::to_ir::collect(expr, pg_sys::NodeTag::T_Var, &mut vars);
            let keyed =
                !pg_sys::contain_agg_clause(expr) && vars.iter().all(|&v| g.keys.iter().any(|&k| pg_sys::equal(k.cast(), v.cast())));
            if !keyed {
                return None;
            }
        }
        let i = match g.columns.iter().position(|&c| pg_sys::equal(c.cast(), expr.cast())) {
            Some(i) => i,
            None => {
                g.columns.push(expr);
                g.columns.len() - 1
            }
        };
        Some(self.placeholder(format!("{GROUPS}.c{}", i + 1), expr))
    }

    /// A placeholder for `text`, typed as `like`.
    unsafe fn placeholder(&mut self, text: String, like: *mut pg_sys::Node) -> *mut pg_sys::Node {
        self.texts.push(text);
        param(self.texts.len(), like)
    }

    /// The value of a correlated one-row sub-query, LEFT JOINed; None when
    /// it is not correlated by equalities, or its value over no rows is
    /// not known.
    unsafe fn scalar(&mut self, link: *mut pg_sys::Node, sub: *mut pg_sys::Query) -> Option<*mut pg_sys::Node> {
        let text = self.join(sub)?.pop()?;
        Some(self.placeholder(text, link))
    }

    /// The value of a correlated sub-query selecting one column of at most
    /// one row (`(SELECT c.name FROM c WHERE c.id = o.cust)`), LEFT JOINed
    /// as its value and count of rows (see `as_counted_value`): NULL over
    /// no rows, the error the query raises over more than one.
    unsafe fn single_row(&mut self, link: *mut pg_sys::Node, sub: *mut pg_sys::Query) -> Option<*mut pg_sys::Node> {
        let counted = as_counted_value(sub);
        if counted.is_null() {
            return None;
        }
        let [value, rows] = <[String; 2]>::try_from(self.join(counted)?).ok()?;
        let target = pg::list::<pg_sys::TargetEntry>((*sub).targetList)[0];
        let typ =
            pg::cstr(pg_sys::format_type_with_typemod(pg_sys::exprType((*target).expr.cast()), pg_sys::exprTypmod((*target).expr.cast())));
        let text = format!("(CASE WHEN {rows} > 1 THEN tide.more_than_one_row({value}) ELSE {value} END)::{typ}");
        Some(self.placeholder(text, link))
    }

    /// A LATERAL sub-query that aggregates, at range table entry `rt`,
    /// LEFT JOINed: its columns are read from the join; false when it
    /// cannot be taken so.
    unsafe fn lateral(&mut self, rt: i32, sub: *mut pg_sys::Query) -> bool {
        let Some(texts) = self.join(sub) else { return false };
        for (i, text) in texts.into_iter().enumerate() {
            self.columns.push((rt, (i + 1) as i16, text));
        }
        true
    }

    /// LEFT JOIN one-row sub-query `sub`, grouped by its correlated columns;
    /// the text of each of its columns over the join (its value over no rows
    /// where no group matched). None when it is not correlated by
    /// equalities, or its value over no rows is not known.
    unsafe fn join(&mut self, sub: *mut pg_sys::Query) -> Option<Vec<String>> {
        let values: Vec<*mut pg_sys::Node> =
            pg::list::<pg_sys::TargetEntry>((*sub).targetList).into_iter().filter(|t| !(**t).resjunk).map(|t| (*t).expr.cast()).collect();
        if values.len() != pg_sys::list_length((*sub).targetList) as usize {
            return None;
        }
        let empties: Vec<*mut pg_sys::Node> = values.iter().map(|&v| value_over_no_rows(v)).collect::<Option<_>>()?;
        let (k, pairs) = grouped_by_correlation(sub)?;
        let keys_only = pg_sys::copyObjectImpl(k.cast()) as *mut pg_sys::Query;
        let mut key_targets: *mut pg_sys::List = std::ptr::null_mut();
        for t in pg::list::<pg_sys::TargetEntry>((*k).targetList).into_iter().skip(values.len()) {
            key_targets = pg_sys::lappend(key_targets, t.cast());
        }
        (*keys_only).targetList = key_targets;
        let outer: Vec<String> = pairs
            .iter()
            .map(|(op, outer, left, _)| format!("{} {} {left}", deparse(self.q, self.namespaces, *outer, false), (**op).opno.to_u32()))
            .collect();
        let signature = format!("{} | {}", super::deparse_without_search_path(keys_only), outer.join(", "));
        let value_targets: Vec<*mut pg_sys::TargetEntry> =
            pg::list::<pg_sys::TargetEntry>((*k).targetList).into_iter().take(values.len()).collect();
        let at = match self.joins.iter().position(|j| j.signature == signature) {
            Some(at) => {
                // Its values join those of K, after them.
                let j = &mut self.joins[at];
                for &t in &value_targets {
                    (*t).resno = (pg_sys::list_length((*j.query).targetList) + 1) as i16;
                    (*j.query).targetList = pg_sys::lappend((*j.query).targetList, t.cast());
                }
                at
            }
            None => {
                let alias = format!("__tide_scalar_{}", self.joins.len() + 1);
                let mut on = Vec::new();
                for (j, (op, outer, outer_left, inner)) in pairs.iter().enumerate() {
                    let outer = match self.groups.is_some() {
                        // Over the groups: a column of G, which must be a group key there.
                        true => self.group_column(*outer, true)?,
                        false => *outer,
                    };
                    let key = self.placeholder(format!("{alias}.k{}", j + 1), *inner);
                    let eq = pg_sys::copyObjectImpl((*op).cast()) as *mut pg_sys::OpExpr;
                    let args = if *outer_left { [outer, key] } else { [key, outer] };
                    (*eq).args = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), args[0].cast()), args[1].cast());
                    on.push(deparse(self.q, self.namespaces, eq.cast(), false));
                }
                self.joins.push(Join { query: k, signature, alias, on: on.join(" AND "), values: 0 });
                self.joins.len() - 1
            }
        };
        // Name the values v<i> in K; the correlation is strict equalities:
        // k1 is NULL only where no group matched.
        let j = &mut self.joins[at];
        let mut texts = Vec::new();
        for ((&value, &empty), &target) in values.iter().zip(&empties).zip(&value_targets) {
            j.values += 1;
            let name = std::ffi::CString::new(format!("v{}", j.values)).expect("no NUL");
            (*target).resname = pg_sys::pstrdup(name.as_ptr());
            let column = format!("{}.v{}", j.alias, j.values);
            texts.push(if null_when_empty(value) {
                column
            } else {
                format!("CASE WHEN {}.k1 IS NULL THEN {} ELSE {column} END", j.alias, deparse(self.q, self.namespaces, empty, false))
            });
        }
        Some(texts)
    }
}

/// An expression with its correlated scalar sub-queries replaced by placeholders.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn lift(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &mut *(ctx as *mut Lift);
    if pg::is_a(node, pg_sys::NodeTag::T_SubLink) {
        let link = node as *mut pg_sys::SubLink;
        let sub = (*link).subselect as *mut pg_sys::Query;
        if !pg_sys::contain_vars_of_level(sub.cast(), 1) {
            // Uncorrelated: `sublinks` joins it once the query is written.
            return node;
        }
        if (*link).subLinkType == pg_sys::SubLinkType::EXPR_SUBLINK {
            let taken = if one_row_aggregate(sub) { c.scalar(node, sub) } else { c.single_row(node, sub) };
            if let Some(p) = taken {
                return p;
            }
        }
        c.failed = true;
        return node;
    }
    if c.groups.is_some() {
        let own_var = pg::is_a(node, pg_sys::NodeTag::T_Var) && (*(node as *mut pg_sys::Var)).varlevelsup == 0;
        let own_agg = pg::is_a(node, pg_sys::NodeTag::T_Aggref) && (*(node as *mut pg_sys::Aggref)).agglevelsup == 0;
        if own_var || own_agg || pg::is_a(node, pg_sys::NodeTag::T_GroupingFunc) {
            return c.group_column(node, false).expect("over the groups");
        }
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Var) {
        let v = node as *mut pg_sys::Var;
        if let Some(text) =
            c.columns.iter().find(|(rt, a, _)| (*v).varlevelsup == 0 && *rt == (*v).varno && *a == (*v).varattno).map(|x| x.2.clone())
        {
            return c.placeholder(text, node);
        }
        if (*v).varlevelsup == 0 && c.columns.iter().any(|(rt, _, _)| *rt == (*v).varno) {
            // A whole-row reference to the sub-query.
            c.failed = true;
        }
    }
    pg::mutate_children(node, lift, ctx)
}

/// Sub-query `sub` of an expression, a select-project-join with one
/// column, as one that aggregates its rows: `(array_agg(<column>))[1]` and
/// `count(*)`, the value of its row when it has one. Null when `sub` is
/// not such a query, or its column's type has no array of it.
unsafe fn as_counted_value(sub: *mut pg_sys::Query) -> *mut pg_sys::Query {
    let plain = (*sub).commandType == pg_sys::CmdType::CMD_SELECT
        && (*sub).setOperations.is_null()
        && !(*sub).hasAggs
        && (*sub).groupClause.is_null()
        && (*sub).groupingSets.is_null()
        && (*sub).havingQual.is_null()
        && (*sub).distinctClause.is_null()
        && (*sub).limitCount.is_null()
        && (*sub).limitOffset.is_null()
        && !(*sub).hasTargetSRFs
        && !(*sub).hasWindowFuncs
        && (*sub).cteList.is_null()
        && !(*sub).jointree.is_null();
    if !plain {
        return std::ptr::null_mut();
    }
    // One column (and ORDER BY's hidden ones, meaningless here).
    let columns: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*sub).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    let [column] = columns.as_slice() else { return std::ptr::null_mut() };
    let value = (**column).expr as *mut pg_sys::Node;
    let (typ, typmod, collation) = (pg_sys::exprType(value), pg_sys::exprTypmod(value), pg_sys::exprCollation(value));
    // (An array's array_agg adds a dimension, which [1] does not take off.)
    if pg_sys::get_array_type(typ) == pg_sys::InvalidOid || pg_sys::get_element_type(typ) != pg_sys::InvalidOid {
        return std::ptr::null_mut();
    }
    // PostgreSQL resolves the aggregates for the column's type; the column
    // then takes the placeholder's place.
    let nest = pg::push_search_path(c"");
    let shape = super::parse_query(&format!(
        "SELECT (pg_catalog.array_agg(x))[1], pg_catalog.count(*) FROM (SELECT NULL::{} AS x) s",
        pg::cstr(pg_sys::format_type_with_typemod(typ, typmod))
    ));
    pg_sys::AtEOXact_GUC(true, nest);
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*shape).targetList);
    let first = (*targets[0]).expr as *mut pg_sys::SubscriptingRef;
    let agg = (*first).refexpr as *mut pg_sys::Aggref;
    let arg = pg::list::<pg_sys::TargetEntry>((*agg).args)[0];
    (*arg).expr = pg_sys::copyObjectImpl(value.cast()).cast();
    (*agg).inputcollid = collation;
    (*agg).aggcollid = collation;
    (*first).refcollid = collation;
    let counted = pg_sys::copyObjectImpl(sub.cast()) as *mut pg_sys::Query;
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for (i, t) in targets.iter().enumerate() {
        (**t).resno = (i + 1) as i16;
        list = pg_sys::lappend(list, (*t).cast());
    }
    (*counted).targetList = list;
    (*counted).sortClause = std::ptr::null_mut();
    (*counted).hasAggs = true;
    counted
}

/// A sub-query's value expression over no rows: each aggregate replaced by
/// its value then; None for an aggregate whose value then is not known.
unsafe fn value_over_no_rows(value: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    let mut known = true;
    let e = empty_mutator(pg_sys::copyObjectImpl(value.cast()).cast(), (&mut known as *mut bool).cast());
    known.then_some(e)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn empty_mutator(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Aggref) {
        let a = node as *mut pg_sys::Aggref;
        let Some(value) = empty_aggregate(a) else {
            *(ctx as *mut bool) = false;
            return node;
        };
        let (typ, typmod, coll) = (pg_sys::exprType(node), pg_sys::exprTypmod(node), pg_sys::exprCollation(node));
        let (mut len, mut byval) = (0i16, false);
        pg_sys::get_typlenbyval(typ, &mut len, &mut byval);
        return match value {
            // count and regr_count are bigint.
            Some(n) => pg_sys::makeConst(typ, typmod, coll, len as i32, pg_sys::Datum::from(n), false, byval).cast(),
            None => pg_sys::makeNullConst(typ, typmod, coll).cast(),
        };
    }
    pg::mutate_children(node, empty_mutator, ctx)
}

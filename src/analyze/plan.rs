//! The analyzed Query as a `ViewPlan`: what the delta rules need, for a
//! query that `delta::first_unmaintained` found maintainable (a join block of
//! base tables, inner or outer joins, then a bag or groups).

use super::outer;
use super::to_ir::{collect, deparse, deparse_context, direction, find_target, flatten_join_aliases};
use crate::delta::plan::{Agg, AggKind, Input, Lookup, OutputColumn, Shape, Source, Spj, Term, ViewPlan};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// The query a plan is made from (see `analyze::plan_query`): the Query,
/// and for each side an outer join pads, the table of its keys' internal
/// view, by (join, keys side).
pub struct PlanQuery {
    pub query: *mut pg_sys::Query,
    pub keys: Vec<OuterKeys>,
    /// NOT EXISTS conjuncts of WHERE, with their keys' tables.
    pub anti: Vec<super::sublinks::Anti>,
}

/// The distinct join keys of a side an outer join pads: a table (an
/// internal view's) and its columns holding the keys, in the order of the
/// condition's equalities.
pub struct OuterKeys {
    pub join: *mut pg_sys::JoinExpr,
    pub side: *mut pg_sys::Node,
    pub table: pg_sys::Oid,
    pub columns: Vec<String>,
}

pub unsafe fn view_plan(pq: PlanQuery) -> ViewPlan {
    let q = pq.query;
    if !(*q).setOperations.is_null() {
        return set_operation_plan(q);
    }
    if super::recursive::is_component(q) {
        let columns = pg::list::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .map(|t| OutputColumn { name: pg::cstr((*t).resname), sql: String::new(), key: None, not_null: false })
            .collect();
        let query = super::deparse_without_search_path(q).trim().to_string();
        let source = Source { from: "(SELECT) AS none".into(), predicate: None };
        let reads = super::recursive::tables_read(q);
        let semi_naive = super::recursive::semi_naive(q);
        return ViewPlan { terms: vec![], source, shape: Shape::Recompute { columns, query, semi_naive }, reads };
    }
    let (names, namespaces) = deparse_context(q, std::ptr::null_mut());
    let ex = |node: *mut pg_sys::Node| deparse(q, namespaces, node, false);
    let mut used = used_columns(q);
    // The anti-joins' equalities are not in the query tree (their NOT EXISTS is).
    let other_exprs = pq.anti.iter().filter_map(|a| a.other.as_ref()).flat_map(|o| o.keys.iter().copied().chain([o.unequal]));
    for e in pq.anti.iter().flat_map(|a| a.equalities.iter().copied()).chain(other_exprs).collect::<Vec<_>>().iter() {
        let mut vars = Vec::new();
        collect(*e, pg_sys::NodeTag::T_Var, &mut vars);
        for v in vars.into_iter().map(|v| v as *mut pg_sys::Var).filter(|v| (**v).varlevelsup == 0 && (**v).varattno > 0) {
            if !used.contains(&((*v).varno, (*v).varattno)) {
                used.push(((*v).varno, (*v).varattno));
            }
        }
    }
    used.sort_unstable();
    let alias = |rt: i32| pg::quote_ident(&names[(rt - 1) as usize]);
    let input = |rt: i32| {
        let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
        if let Some((relation, columns)) = constant_item(rte, &ex) {
            // Never changes itself: evaluated per row of what it refers to.
            return Input { alias: format!("{}({})", alias(rt), columns), relid: 0, relation, columns: vec![], consolidate: true };
        }
        let attnos: Vec<i16> = used.iter().filter(|(r, _)| *r == rt).map(|(_, a)| *a).collect();
        let mut columns = Vec::new();
        let mut consolidate = true;
        for a in attnos {
            columns.push(pg::cstr(pg_sys::get_attname((*rte).relid, a, false)));
            let typid = pg_sys::get_atttype((*rte).relid, a);
            consolidate &= pg::has_equality(typid);
        }
        Input { alias: alias(rt), relid: (*rte).relid.to_u32(), relation: pg::qualified_relation_name((*rte).relid), columns, consolidate }
    };
    // The row of NULLs that pads a table's place in an outer join's unmatched rows.
    let null_row = |rt: i32| {
        let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
        let cols: Vec<String> = used.iter().filter(|(r, _)| *r == rt).map(|(_, a)| null_column((*rte).relid, *a)).collect();
        Input { alias: alias(rt), relid: 0, relation: format!("(SELECT {})", cols.join(", ")), columns: vec![], consolidate: true }
    };

    // The input: signed select-project-join terms (one unless outer joins).
    let mut parts = Vec::new();
    for item in pg::list::<pg_sys::Node>((*(*q).jointree).fromlist) {
        parts = product(parts, expand(q, item, &pq.keys, &ex));
    }
    // WHERE, but for NOT EXISTS: the rows minus those with a match (as
    // for an outer join's unmatched rows, without the padding).
    let quals = (*(*q).jointree).quals;
    let conjuncts: Vec<*mut pg_sys::Node> = if quals.is_null() { vec![] } else { pg::list(pg_sys::make_ands_implicit(quals.cast())) };
    for c in conjuncts.iter().filter(|c| !pq.anti.iter().any(|a| a.conjunct == **c)) {
        let w = ex(*c);
        parts.iter_mut().for_each(|p| p.conds.push(w.clone()));
    }
    for a in &pq.anti {
        if let Some(o) = &a.other {
            // Another row of the same key: [C.n >= 1, x not NULL] minus
            // [C.n = 1 and (keys, x) in K]; NOT EXISTS is the rest.
            let (c, k) = (alias(o.counts), alias(a.rtindex));
            let m = o.keys.len();
            let key_cols: Vec<String> = (1..=m).map(|i| format!("k{i}")).collect();
            let counts = Item::Keys { rt: o.counts, columns: key_cols.iter().cloned().chain(["n".to_string()]).collect() };
            let pairs = Item::Keys { rt: a.rtindex, columns: key_cols.iter().cloned().chain(["v".to_string()]).collect() };
            let x = ex(o.unequal);
            let mut with_counts: Vec<String> = o.keys.iter().enumerate().map(|(i, e)| format!("({}) = {c}.k{}", ex(*e), i + 1)).collect();
            with_counts.push(format!("{c}.n >= 1 AND ({x}) IS NOT NULL"));
            let mut with_self: Vec<String> = o
                .keys
                .iter()
                .enumerate()
                .map(|(i, e)| format!("({}) = {c}.k{} AND ({}) = {k}.k{}", ex(*e), i + 1, ex(*e), i + 1))
                .collect();
            with_self.push(format!("{c}.n = 1 AND ({x}) = {k}.v"));
            let sign = if o.negated { -1 } else { 1 };
            let mut next: Vec<Part> = if o.negated { clone_parts(&parts) } else { Vec::new() };
            next.extend(joined(&parts, std::slice::from_ref(&counts), &with_counts, sign));
            next.extend(joined(&parts, &[counts, pairs], &with_self, -sign));
            parts = next;
            continue;
        }
        let matched: Vec<String> = a.equalities.iter().map(|e| ex(*e)).collect();
        let keys = Item::Keys { rt: a.rtindex, columns: (1..=a.equalities.len().max(1)).map(|i| format!("k{i}")).collect() };
        if let Some((flags_rt, x)) = a.not_in {
            // NOT IN: kept when the sub-query is empty, or when x is not NULL,
            // the sub-query has no NULL and no row equal to x.
            let f = alias(flags_rt);
            let x = ex(x);
            let flags = Item::Keys { rt: flags_rt, columns: vec!["nonempty".into(), "has_null".into()] };
            for p in &mut parts {
                p.items.push(flags.clone());
            }
            let usable = format!("(({x}) IS NOT NULL AND NOT {f}.has_null)");
            let mut conds = vec![usable.clone()];
            conds.extend(matched.iter().cloned());
            let with_match = joined(&parts, std::slice::from_ref(&keys), &conds, -1);
            for p in &mut parts {
                p.conds.push(format!("(NOT {f}.nonempty OR {usable})"));
            }
            parts.extend(with_match);
            continue;
        }
        let with_match = joined(&parts, &[keys], &matched, -1);
        parts.extend(with_match);
    }
    let terms: Vec<Term> = parts
        .into_iter()
        .map(|p| {
            let lookups = p
                .items
                .iter()
                .enumerate()
                .filter_map(|(at, item)| match item {
                    Item::Lookup { rt, per_key, condition, keys, key_operators, key_equality, own, others } => {
                        let after = p.items[..at].iter().filter(|i| !matches!(i, Item::Lookup { .. })).count();
                        let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
                        let nulls = used.iter().filter(|(r, _)| r == rt).map(|(_, a)| null_column((*rte).relid, *a)).collect();
                        let (condition, keys, own, others) = (condition.clone(), keys.clone(), own.clone(), others.clone());
                        let (key_operators, key_equality) = (key_operators.clone(), key_equality.clone());
                        Some(Lookup {
                            input: input(*rt),
                            after,
                            per_key: *per_key,
                            condition,
                            keys,
                            key_operators,
                            key_equality,
                            own,
                            others,
                            nulls,
                        })
                    }
                    _ => None,
                })
                .collect();
            let inputs = p
                .items
                .iter()
                .filter(|item| !matches!(item, Item::Lookup { .. }))
                .map(|item| match item {
                    Item::Table(rt) => input(*rt),
                    Item::Nulls(rt) => null_row(*rt),
                    Item::OuterKeys { table, columns } => {
                        let columns = columns.clone();
                        Input {
                            alias: keys_alias(*table),
                            relid: table.to_u32(),
                            relation: pg::qualified_relation_name(*table),
                            columns,
                            consolidate: true,
                        }
                    }
                    Item::Keys { rt, columns } => Input { columns: columns.clone(), ..input(*rt) },
                    Item::Lookup { .. } => unreachable!("filtered out above"),
                })
                .collect();
            let predicate = if p.conds.is_empty() { None } else { Some(p.conds.join(" AND ")) };
            Term { sign: p.sign, spj: Spj { inputs, predicate, lookups } }
        })
        .collect();
    let source = match terms.as_slice() {
        [t] if t.sign > 0 => t.spj.source(),
        _ => Source { from: from_clause(q), predicate: (!(*(*q).jointree).quals.is_null()).then(|| ex((*(*q).jointree).quals)) },
    };

    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    if (*q).hasWindowFuncs {
        return partitioned_plan(q, common_partition(q), terms, source, &targets, &ex);
    }
    if (*q).hasDistinctOn {
        // The first row per DISTINCT ON key: recomputed per key like a window partition.
        return partitioned_plan(q, (*q).distinctClause, terms, source, &targets, &ex);
    }
    if !(*q).limitCount.is_null() || !(*q).limitOffset.is_null() {
        // Over the internal view of the query without its LIMIT (see analyze::topk).
        let columns = targets.iter().map(|t| pg::cstr((**t).resname)).collect();
        let refill = super::deparse_without_search_path(q).trim().to_string();
        let index = top_k_index(q);
        return ViewPlan { terms, source, shape: Shape::TopK { columns, refill, index }, reads: vec![] };
    }
    let all_targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).havingQual.is_null();
    let distinct = !(*q).distinctClause.is_null();
    if !grouped && !distinct {
        let inner = inner_joins_only(q);
        let columns = targets
            .iter()
            .map(|t| OutputColumn {
                name: pg::cstr((**t).resname),
                sql: ex((**t).expr.cast()),
                key: None,
                not_null: inner && never_null(q, (**t).expr.cast()),
            })
            .collect();
        return ViewPlan { terms, source, shape: Shape::Bag { columns, multiplicity: None }, reads: vec![] };
    }

    // Groups: GROUP BY keys, or for DISTINCT every output column.
    let key_clause = if grouped { (*q).groupClause } else { (*q).distinctClause };
    let key_targets: Vec<*mut pg_sys::TargetEntry> = pg::list::<pg_sys::SortGroupClause>(key_clause)
        .into_iter()
        .filter_map(|g| find_target(&all_targets, (*g).tleSortGroupRef))
        .collect();
    let key_exprs: Vec<*mut pg_sys::Node> = key_targets.iter().map(|t| (**t).expr.cast()).collect();
    let keys: Vec<String> = key_exprs.iter().map(|&e| ex(e)).collect();
    let key_equality = key_exprs.iter().map(|&e| key_equality(pg_sys::exprType(e))).collect();

    let mut agg_nodes: Vec<*mut pg_sys::Node> = Vec::new();
    let mut found = Vec::new();
    for t in &targets {
        collect((**t).expr.cast(), pg_sys::NodeTag::T_Aggref, &mut found);
    }
    collect((*q).havingQual, pg_sys::NodeTag::T_Aggref, &mut found);
    for n in found {
        if !agg_nodes.iter().any(|&m| pg_sys::equal(m.cast(), n.cast())) {
            agg_nodes.push(n);
        }
    }
    let aggs = agg_nodes.iter().map(|&n| aggregate(q, n as *mut pg_sys::Aggref, &ex)).collect();

    // Output columns and HAVING over placeholders: $i for aggregate i, $(m+j) for key j.
    let mut ctx = Placeholders { aggs: agg_nodes.clone(), keys: key_exprs.clone() };
    let inner = inner_joins_only(q);
    let columns = targets
        .iter()
        .map(|t| {
            let key = key_targets.iter().position(|k| *k == *t);
            let not_null = key.is_some() && inner && never_null(q, (**t).expr.cast());
            let mutated = placeholders((**t).expr.cast(), &mut ctx);
            OutputColumn { name: pg::cstr((**t).resname), sql: deparse(q, namespaces, mutated, true), key, not_null }
        })
        .collect();
    let having = (!(*q).havingQual.is_null()).then(|| {
        let mutated = placeholders((*q).havingQual, &mut ctx);
        deparse(q, namespaces, mutated, true)
    });
    ViewPlan { terms, source, shape: Shape::Grouped { keys, key_equality, aggs, columns, having }, reads: vec![] }
}

/// The equality operator generated SQL matches a key's values with.
fn key_equality(typid: pg_sys::Oid) -> String {
    pg::equality_operator(typid).unwrap_or_else(|| "=".into())
}

/// A set operation over its branches' internal views (see `analyze::setop`):
/// one term per branch, each its table under the alias `u`.
unsafe fn set_operation_plan(q: *mut pg_sys::Query) -> ViewPlan {
    let s = (*q).setOperations as *mut pg_sys::SetOperationStmt;
    let names = super::setop::names(q);
    let alias = "u".to_string();
    let tables: Vec<pg_sys::Oid> = super::setop::internal_branches(q)
        .into_iter()
        .map(|rt| (*(pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry)).relid)
        .collect();
    let terms: Vec<Term> = tables
        .iter()
        .map(|t| {
            let columns = pg::columns(*t).into_iter().map(|(n, _)| n).collect();
            let input =
                Input { alias: alias.clone(), relid: t.to_u32(), relation: pg::qualified_relation_name(*t), columns, consolidate: true };
            Term { sign: 1, spj: Spj { inputs: vec![input], predicate: None, lookups: vec![] } }
        })
        .collect();
    let union = tables.iter().map(|t| format!("SELECT * FROM {}", pg::qualified_relation_name(*t))).collect::<Vec<_>>().join(" UNION ALL ");
    let source = Source { from: format!("({union}) AS {alias}"), predicate: None };
    let column = |n: &String| format!("{alias}.{}", pg::quote_ident(n));
    if (*s).all {
        // UNION ALL: the branches' rows. INTERSECT ALL / EXCEPT ALL: the
        // counts' rows, each standing for min(left, right) or left - right copies.
        let columns = names.iter().map(|n| OutputColumn { name: n.clone(), sql: column(n), key: None, not_null: false }).collect();
        let multiplicity = match (*s).op {
            pg_sys::SetOperation::SETOP_INTERSECT => Some(format!("least({alias}.__tide_left, {alias}.__tide_right)")),
            pg_sys::SetOperation::SETOP_EXCEPT => Some(format!("greatest({alias}.__tide_left - {alias}.__tide_right, 0)")),
            _ => None,
        };
        return ViewPlan { terms, source, shape: Shape::Bag { columns, multiplicity }, reads: vec![] };
    }
    // The distinct rows; for INTERSECT and EXCEPT, counted per side.
    let keys: Vec<String> = names.iter().map(column).collect();
    let key_equality = pg::list::<pg_sys::TargetEntry>((*q).targetList)
        .into_iter()
        .filter(|t| !(**t).resjunk)
        .map(|t| key_equality(pg_sys::exprType((*t).expr.cast())))
        .collect();
    let sided = super::setop::sided(q);
    let aggs: Vec<Agg> = if sided {
        (1..=2)
            .map(|side| Agg {
                kind: AggKind::CountStar,
                arg: None,
                call: "count(*)".into(),
                filter: Some(format!("{alias}.{} = {side}", super::setop::SIDE)),
                result_type: "bigint".into(),
                arg_not_null: false,
            })
            .collect()
    } else {
        vec![]
    };
    let columns = names
        .iter()
        .enumerate()
        .map(|(j, n)| OutputColumn { name: n.clone(), sql: format!("${}", aggs.len() + j + 1), key: Some(j), not_null: false })
        .collect();
    let having = match (*s).op {
        pg_sys::SetOperation::SETOP_INTERSECT => Some("(($1 > 0) AND ($2 > 0))".to_string()),
        pg_sys::SetOperation::SETOP_EXCEPT => Some("(($1 > 0) AND ($2 = 0))".to_string()),
        _ => None,
    };
    ViewPlan { terms, source, shape: Shape::Grouped { keys, key_equality, aggs, columns, having }, reads: vec![] }
}

/// The PARTITION BY keys common to every window of `q` (as `to_ir` takes
/// them): each window's partitions lie within one partition of those.
unsafe fn common_partition(q: *mut pg_sys::Query) -> *mut pg_sys::List {
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let expr = |g: *mut pg_sys::SortGroupClause| find_target(&targets, (*g).tleSortGroupRef).map(|t| (*t).expr);
    let windows = pg::list::<pg_sys::WindowClause>((*q).windowClause);
    let mut common: *mut pg_sys::List = std::ptr::null_mut();
    for g in pg::list::<pg_sys::SortGroupClause>((*windows[0]).partitionClause) {
        let in_all = windows.iter().all(|w| {
            pg::list::<pg_sys::SortGroupClause>((**w).partitionClause).into_iter().any(|h| match (expr(g), expr(h)) {
                (Some(a), Some(b)) => pg_sys::equal(a.cast(), b.cast()),
                _ => false,
            })
        });
        if in_all {
            common = pg_sys::lappend(common, g.cast());
        }
    }
    common
}

/// Window functions and DISTINCT ON (see `delta::window`): the partition
/// keys (PARTITION BY, or DISTINCT ON) as view columns and expressions, and
/// the query with a `$1` condition added to its WHERE, which the statement
/// replaces by "in an affected partition".
unsafe fn partitioned_plan(
    q: *mut pg_sys::Query,
    partition: *mut pg_sys::List,
    terms: Vec<Term>,
    source: Source,
    targets: &[*mut pg_sys::TargetEntry],
    ex: &dyn Fn(*mut pg_sys::Node) -> String,
) -> ViewPlan {
    let all_targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let key_targets: Vec<*mut pg_sys::TargetEntry> = pg::list::<pg_sys::SortGroupClause>(partition)
        .into_iter()
        .filter_map(|g| find_target(&all_targets, (*g).tleSortGroupRef))
        .collect();
    let key_equality = key_targets.iter().map(|k| key_equality(pg_sys::exprType((**k).expr.cast()))).collect();
    let keys = key_targets
        .iter()
        .map(|k| {
            let column =
                targets.iter().find(|t| pg_sys::equal((*(**t)).expr.cast(), (**k).expr.cast())).expect("delta::maintenance: a view column");
            (pg::cstr((**column).resname), ex((**k).expr.cast()))
        })
        .collect();
    let c = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let marker = pg_sys::palloc0(std::mem::size_of::<pg_sys::Param>()) as *mut pg_sys::Param;
    (*marker).xpr.type_ = pg_sys::NodeTag::T_Param;
    (*marker).paramkind = pg_sys::ParamKind::PARAM_EXTERN;
    (*marker).paramid = 1;
    (*marker).paramtype = pg_sys::BOOLOID;
    (*marker).paramtypmod = -1;
    (*marker).location = -1;
    let quals = (*(*c).jointree).quals;
    let mut list = pg_sys::lappend(std::ptr::null_mut(), marker.cast());
    if !quals.is_null() {
        list = pg_sys::lappend(list, quals.cast());
    }
    (*(*c).jointree).quals = pg_sys::make_ands_explicit(list).cast();
    if !(*c).hasDistinctOn {
        // (DISTINCT ON needs its ORDER BY: it picks the first row.)
        (*c).sortClause = std::ptr::null_mut();
    }
    let refill = super::deparse_without_search_path(c).trim().to_string();
    let columns = targets.iter().map(|t| pg::cstr((**t).resname)).collect();
    ViewPlan { terms, source, shape: Shape::Window { columns, keys, key_equality, refill }, reads: vec![] }
}

/// The index the rows under a top-K are read through: on the ORDER BY keys,
/// in their order and directions.
unsafe fn top_k_index(q: *mut pg_sys::Query) -> Option<String> {
    let rte = pg_sys::list_nth((*q).rtable, 0) as *mut pg_sys::RangeTblEntry;
    let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let mut keys = Vec::new();
    for s in pg::list::<pg_sys::SortGroupClause>((*q).sortClause) {
        let t = find_target(&targets, (*s).tleSortGroupRef)?;
        if !pg::is_a((*t).expr, pg_sys::NodeTag::T_Var) {
            return None;
        }
        let attno = (*((*t).expr as *mut pg_sys::Var)).varattno;
        keys.push(format!("{}{}", pg::quote_ident(&pg::cstr(pg_sys::get_attname((*rte).relid, attno, false))), direction(s)));
    }
    (!keys.is_empty() && keys.len() <= 32)
        .then(|| format!("CREATE INDEX ON {} ({})", pg::qualified_relation_name((*rte).relid), keys.join(", ")))
}

/// A function or VALUES in FROM, as (the item's SQL, its column names):
/// `LATERAL f(...)` (it may refer to the items before it), `(VALUES ...)`.
unsafe fn constant_item(rte: *mut pg_sys::RangeTblEntry, ex: &dyn Fn(*mut pg_sys::Node) -> String) -> Option<(String, String)> {
    let columns = || {
        pg::list::<pg_sys::String>((*(*rte).eref).colnames)
            .into_iter()
            .map(|n| pg::quote_ident(&pg::cstr((*n).sval)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (*rte).rtekind {
        pg_sys::RTEKind::RTE_FUNCTION => {
            let f = pg::list::<pg_sys::RangeTblFunction>((*rte).functions)[0];
            let ordinality = if (*rte).funcordinality { " WITH ORDINALITY" } else { "" };
            Some((format!("LATERAL {}{ordinality}", ex((*f).funcexpr)), columns()))
        }
        pg_sys::RTEKind::RTE_VALUES => {
            let rows: Vec<String> = pg::list::<pg_sys::List>((*rte).values_lists)
                .into_iter()
                .map(|row| format!("({})", pg::list::<pg_sys::Node>(row).into_iter().map(ex).collect::<Vec<_>>().join(", ")))
                .collect();
            Some((format!("(VALUES {})", rows.join(", ")), columns()))
        }
        _ => None,
    }
}

/// A FROM item of a term: a table, the NULL row standing for a table on the
/// padded side of an outer join, the distinct join keys of such a side (an
/// internal view's table with columns k1..kn), or those of a NOT EXISTS
/// (in the range table, outside the join tree).
#[derive(Clone)]
enum Item {
    Table(i32),
    Nulls(i32),
    OuterKeys {
        table: pg_sys::Oid,
        columns: Vec<String>,
    },
    /// An internal view's table at range table entry `rt`, reading `columns`.
    Keys {
        rt: i32,
        columns: Vec<String>,
    },
    /// Table `rt`, padded by an outer join and left-joined on `condition`
    /// (see `Lookup`): (expression of the kept side, of the table) per
    /// equality, the conjuncts on the table alone, on the kept side alone.
    Lookup {
        rt: i32,
        per_key: bool,
        condition: String,
        keys: Vec<(String, String)>,
        key_operators: Vec<String>,
        key_equality: Vec<String>,
        own: Vec<String>,
        others: Vec<String>,
    },
}

/// A term under construction: sign · (items joined, filtered by conds).
#[derive(Default)]
struct Part {
    sign: i64,
    items: Vec<Item>,
    conds: Vec<String>,
}

/// Every pairing of a term of `a` with a term of `b` (an empty `a` is the
/// one empty term).
fn product(a: Vec<Part>, b: Vec<Part>) -> Vec<Part> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            let mut items: Vec<Item> = x.items.iter().map(Item::clone).collect();
            items.extend(y.items.iter().map(Item::clone));
            let mut conds = x.conds.clone();
            conds.extend(y.conds.iter().cloned());
            out.push(Part { sign: x.sign * y.sign, items, conds });
        }
    }
    out
}

fn keys_alias(table: pg_sys::Oid) -> String {
    format!("__tide_keys_{}", table.to_u32())
}

/// The terms of a join tree node. An outer join `L ⟕ R ON θ` is
/// `L⋈R + L×NULL_R − (L⋈K)×NULL_R` (see `outer`), FULL with both sides.
unsafe fn expand(
    q: *mut pg_sys::Query,
    node: *mut pg_sys::Node,
    keys: &[OuterKeys],
    ex: &dyn Fn(*mut pg_sys::Node) -> String,
) -> Vec<Part> {
    use pg_sys::NodeTag::*;
    match (*node).type_ {
        T_RangeTblRef => vec![Part { sign: 1, items: vec![Item::Table((*(node as *mut pg_sys::RangeTblRef)).rtindex)], conds: vec![] }],
        T_FromExpr => {
            let f = node as *mut pg_sys::FromExpr;
            let mut parts = Vec::new();
            for item in pg::list::<pg_sys::Node>((*f).fromlist) {
                parts = product(parts, expand(q, item, keys, ex));
            }
            if !(*f).quals.is_null() {
                let c = ex((*f).quals);
                parts.iter_mut().for_each(|p| p.conds.push(c.clone()));
            }
            parts
        }
        T_JoinExpr => {
            let j = node as *mut pg_sys::JoinExpr;
            let left = expand(q, (*j).larg, keys, ex);
            let right = expand(q, (*j).rarg, keys, ex);
            let theta = (!(*j).quals.is_null()).then(|| ex((*j).quals));
            if let Some((kept, rt)) = outer::lookup_side(q, j) {
                let split = outer::sort_conjuncts(q, (*j).quals, &outer::relations_under(kept), &[rt]).expect("a lookup pads a table");
                let lookup = Item::Lookup {
                    rt,
                    per_key: split.mixed.is_empty() && !split.equalities.is_empty(),
                    condition: theta.unwrap_or_else(|| "true".into()),
                    keys: split.equalities.iter().map(|(o, k, _)| (ex(*o), ex(*k))).collect(),
                    key_operators: split.equalities.iter().map(|(_, _, op)| pg::operator_name(*op)).collect(),
                    key_equality: split.equalities.iter().map(|(_, k, _)| key_equality(pg_sys::exprType(*k))).collect(),
                    own: split.keys_only.iter().map(|c| ex(*c)).collect(),
                    others: split.outer_only.iter().map(|c| ex(*c)).collect(),
                };
                let mut parts = if kept == (*j).larg { left } else { right };
                parts.iter_mut().for_each(|p| p.items.push(lookup.clone()));
                return parts;
            }
            let sides = outer::padded_sides(j);
            let mut parts = product(clone_parts(&left), clone_parts(&right));
            if let Some(t) = &theta {
                parts.iter_mut().for_each(|p| p.conds.push(t.clone()));
            }
            for (kept, keys_side) in sides {
                let kept_parts = if kept == (*j).larg { &left } else { &right };
                let nulls: Vec<Item> = outer::relations_under(keys_side).into_iter().map(Item::Nulls).collect();
                let split = outer::split(q, (*j).quals, &outer::relations_under(kept), &outer::relations_under(keys_side))
                    .expect("delta::maintenance refuses outer joins whose condition does not split");
                let found = keys.iter().find(|k| k.join == j && k.side == keys_side).expect("plan_query found the keys' table");
                let (table, columns) = (found.table, &found.columns);
                let alias = keys_alias(table);
                let mut matched: Vec<String> = split.outer_only.iter().map(|c| ex(*c)).collect();
                for (i, (expr, _, op)) in split.equalities.iter().enumerate() {
                    matched.push(format!("({}) {} {alias}.{}", ex(*expr), pg::operator_name(*op), pg::quote_ident(&columns[i])));
                }
                for p in kept_parts {
                    // The kept side's rows, padded.
                    let mut items: Vec<Item> = p.items.iter().map(Item::clone).collect();
                    items.extend(nulls.iter().map(Item::clone));
                    parts.push(Part { sign: p.sign, items, conds: p.conds.clone() });
                    // Minus those with a match, padded.
                    let mut items: Vec<Item> = p.items.iter().map(Item::clone).collect();
                    items.push(Item::OuterKeys { table, columns: columns.clone() });
                    items.extend(nulls.iter().map(Item::clone));
                    let mut conds = p.conds.clone();
                    conds.extend(matched.iter().cloned());
                    parts.push(Part { sign: -p.sign, items, conds });
                }
            }
            parts
        }
        _ => vec![],
    }
}

/// Each of `parts` joined with `items` under `conds`, its sign times `sign`.
fn joined(parts: &[Part], items: &[Item], conds: &[String], sign: i64) -> Vec<Part> {
    parts
        .iter()
        .map(|p| {
            let mut all: Vec<Item> = p.items.iter().map(Item::clone).collect();
            all.extend(items.iter().map(Item::clone));
            let mut c = p.conds.clone();
            c.extend(conds.iter().cloned());
            Part { sign: sign * p.sign, items: all, conds: c }
        })
        .collect()
}

fn clone_parts(parts: &[Part]) -> Vec<Part> {
    parts.iter().map(|p| Part { sign: p.sign, items: p.items.iter().map(Item::clone).collect(), conds: p.conds.clone() }).collect()
}

/// `NULL::<type> AS <column>` for column `attno` of `relid`, with its
/// typmod and (when not the default) its collation.
unsafe fn null_column(relid: pg_sys::Oid, attno: i16) -> String {
    let (mut typid, mut typmod, mut collid) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    pg_sys::get_atttypetypmodcoll(relid, attno, &mut typid, &mut typmod, &mut collid);
    let mut value = format!("NULL::{}", pg::cstr(pg_sys::format_type_with_typemod(typid, typmod)));
    if collid != pg_sys::InvalidOid && collid != pg_sys::DEFAULT_COLLATION_OID {
        value.push_str(&format!(" COLLATE {}", pg::cstr(pg_sys::generate_collation_name(collid))));
    }
    format!("{value} AS {}", pg::quote_ident(&pg::cstr(pg_sys::get_attname(relid, attno, false))))
}

/// The query's FROM clause as ruleutils writes it (with the aliases the
/// plan's expressions use): the query with its select list reduced to `1`
/// and no WHERE, deparsed, then what follows `FROM`.
pub(super) unsafe fn from_clause(q: *mut pg_sys::Query) -> String {
    let c = pg_sys::copyObjectImpl(q.cast()) as *mut pg_sys::Query;
    let one = pg_sys::makeConst(pg_sys::INT4OID, -1, pg_sys::InvalidOid, 4, pg_sys::Datum::from(1i32), false, true);
    let target = pg_sys::makeTargetEntry(one.cast(), 1, pg_sys::pstrdup(c"one".as_ptr()), false);
    (*c).targetList = pg_sys::lappend(std::ptr::null_mut(), target.cast());
    (*(*c).jointree).quals = std::ptr::null_mut();
    // CTEs are inlined or internal views by now: their WITH would come first.
    (*c).cteList = std::ptr::null_mut();
    (*c).hasRecursive = false;
    outer::only_join_block(c);
    let text = pg::cstr(pg_sys::pg_get_querydef(c, false));
    let at = text.find("FROM ").expect("a query with a FROM clause");
    text[at + "FROM ".len()..].trim().to_string()
}

unsafe fn aggregate(q: *mut pg_sys::Query, a: *mut pg_sys::Aggref, ex: &dyn Fn(*mut pg_sys::Node) -> String) -> Agg {
    let name = pg::cstr(pg_sys::get_func_name((*a).aggfnoid));
    let args: Vec<*mut pg_sys::TargetEntry> = pg::list((*a).args);
    let arg = args.first().map(|t| ex((**t).expr.cast()));
    let arg_not_null = args.first().is_some_and(|t| inner_joins_only(q) && never_null(q, (**t).expr.cast()));
    let distinct = !(*a).aggdistinct.is_null();
    let call = ex(a.cast());
    let result_type = pg::cstr(pg_sys::format_type_be((*a).aggtype));
    let builtin = pg_sys::get_func_namespace((*a).aggfnoid).to_u32() == pg_sys::PG_CATALOG_NAMESPACE;
    let kind = if crate::delta::recomputed_aggregate(&name, builtin, distinct, !(*a).aggorder.is_null()) {
        AggKind::Recomputed
    } else {
        match (name.as_str(), arg.is_some()) {
            ("count", true) if distinct => AggKind::CountDistinct,
            ("sum", _) if distinct => AggKind::SumDistinct,
            ("count", false) => AggKind::CountStar,
            ("count", true) => AggKind::Count,
            ("sum", _) => AggKind::Sum,
            ("avg", _) => AggKind::Avg,
            ("min", _) => AggKind::Min,
            ("max", _) => AggKind::Max,
            ("bool_and" | "every", _) => AggKind::BoolAnd,
            ("bool_or", _) => AggKind::BoolOr,
            ("variance" | "var_samp", _) => AggKind::Variance { sample: true, root: false },
            ("var_pop", _) => AggKind::Variance { sample: false, root: false },
            ("stddev" | "stddev_samp", _) => AggKind::Variance { sample: true, root: true },
            ("stddev_pop", _) => AggKind::Variance { sample: false, root: true },
            (other, _) => unreachable!("aggregate {other} is kept from running state"),
        }
    };
    if kind == AggKind::Recomputed {
        // The call carries its own FILTER, ORDER BY and arguments.
        return Agg { kind, arg: None, call, filter: None, result_type, arg_not_null: false };
    }
    Agg { kind, arg, call, filter: (!(*a).aggfilter.is_null()).then(|| ex((*a).aggfilter.cast())), result_type, arg_not_null }
}

/// Whether the query's FROM clause has only inner joins (no column of it
/// can be NULL for a missing partner).
pub(super) unsafe fn inner_joins_only(q: *mut pg_sys::Query) -> bool {
    unsafe fn inner(n: *mut pg_sys::Node) -> bool {
        if pg::is_a(n, pg_sys::NodeTag::T_JoinExpr) {
            let j = n as *mut pg_sys::JoinExpr;
            (*j).jointype == pg_sys::JoinType::JOIN_INNER && inner((*j).larg) && inner((*j).rarg)
        } else {
            pg::is_a(n, pg_sys::NodeTag::T_RangeTblRef)
        }
    }
    pg::list::<pg_sys::Node>((*(*q).jointree).fromlist).into_iter().all(|n| inner(n))
}

/// Whether expression `e` of query `q` (inner joins only) is never NULL:
/// a NOT NULL column of a table, a non-NULL constant, or PostgreSQL's own
/// arithmetic operators and casts over such (they fail, never return NULL,
/// on values that are not NULL). Anything else may be NULL.
unsafe fn never_null(q: *mut pg_sys::Query, e: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    let builtin = |oid: pg_sys::Oid| oid.to_u32() < pg_sys::FirstGenbkiObjectId;
    if pg::is_a(e, T_Var) {
        let v = e as *mut pg_sys::Var;
        if (*v).varlevelsup != 0 || (*v).varattno <= 0 {
            return false;
        }
        let rte = pg::list::<pg_sys::RangeTblEntry>((*q).rtable)[(*v).varno as usize - 1];
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return false;
        }
        // The relation is locked by the query's analysis.
        let rel = pg_sys::RelationIdGetRelation((*rte).relid);
        if rel.is_null() {
            return false;
        }
        let desc = &*(*rel).rd_att;
        let not_null = desc.attrs.as_slice(desc.natts as usize).get((*v).varattno as usize - 1).is_some_and(|a| a.attnotnull);
        pg_sys::RelationClose(rel);
        not_null
    } else if pg::is_a(e, T_Const) {
        !(*(e as *mut pg_sys::Const)).constisnull
    } else if pg::is_a(e, T_RelabelType) {
        never_null(q, (*(e as *mut pg_sys::RelabelType)).arg.cast())
    } else if pg::is_a(e, T_OpExpr) {
        let o = e as *mut pg_sys::OpExpr;
        let name = pg::cstr(pg_sys::get_opname((*o).opno));
        builtin((*o).opno)
            && matches!(name.as_str(), "+" | "-" | "*" | "/" | "%")
            && pg::list::<pg_sys::Node>((*o).args).into_iter().all(|a| never_null(q, a))
    } else if pg::is_a(e, T_FuncExpr) {
        let f = e as *mut pg_sys::FuncExpr;
        let cast = matches!((*f).funcformat, pg_sys::CoercionForm::COERCE_EXPLICIT_CAST | pg_sys::CoercionForm::COERCE_IMPLICIT_CAST);
        cast && builtin((*f).funcid)
            && pg_sys::func_strict((*f).funcid)
            && pg::list::<pg_sys::Node>((*f).args).into_iter().all(|a| never_null(q, a))
    } else {
        false
    }
}

/// (range table index, attnum) of every column of the query's own level.
unsafe fn used_columns(q: *mut pg_sys::Query) -> Vec<(i32, i16)> {
    let mut vars = Vec::new();
    collect_vars(q.cast(), &mut vars);
    let mut out: Vec<(i32, i16)> = vars.into_iter().filter(|(_, a)| *a > 0).collect();
    out.sort();
    out.dedup();
    out
}

unsafe fn collect_vars(q: *mut pg_sys::Node, out: &mut Vec<(i32, i16)>) {
    let mut found = Vec::new();
    let query = q as *mut pg_sys::Query;
    // Join alias variables (JOIN ... USING) stand for base columns: flatten first.
    let mut grab = |n: *mut pg_sys::Node| collect(flatten_join_aliases(query, n), pg_sys::NodeTag::T_Var, &mut found);
    for t in pg::list::<pg_sys::Node>((*query).targetList) {
        grab(t);
    }
    grab((*(*query).jointree).quals);
    for item in pg::list::<pg_sys::Node>((*(*query).jointree).fromlist) {
        grab(item);
    }
    grab((*query).havingQual);
    // Functions and VALUES in FROM read columns of the items before them (LATERAL).
    for rte in pg::list::<pg_sys::RangeTblEntry>((*query).rtable) {
        grab((*rte).functions.cast());
        grab((*rte).values_lists.cast());
    }
    for n in found {
        let v = n as *mut pg_sys::Var;
        if (*v).varlevelsup == 0 {
            out.push(((*v).varno, (*v).varattno));
        }
    }
}

struct Placeholders {
    aggs: Vec<*mut pg_sys::Node>,
    keys: Vec<*mut pg_sys::Node>,
}

unsafe fn placeholders(node: *mut pg_sys::Node, ctx: &mut Placeholders) -> *mut pg_sys::Node {
    replace_with_params(node, (ctx as *mut Placeholders).cast())
}

/// A Param `$id` standing for `expr`, with its type, typmod and collation.
pub(super) unsafe fn param(id: usize, expr: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let p = pg_sys::palloc0(std::mem::size_of::<pg_sys::Param>()) as *mut pg_sys::Param;
    (*p).xpr.type_ = pg_sys::NodeTag::T_Param;
    (*p).paramkind = pg_sys::ParamKind::PARAM_EXTERN;
    (*p).paramid = id as i32;
    (*p).paramtype = pg_sys::exprType(expr);
    (*p).paramtypmod = pg_sys::exprTypmod(expr);
    (*p).paramcollid = pg_sys::exprCollation(expr);
    (*p).location = -1;
    p.cast()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn replace_with_params(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    let c = &*(ctx as *mut Placeholders);
    if let Some(i) = c.aggs.iter().position(|&a| pg_sys::equal(a.cast(), node.cast())) {
        return param(i + 1, node);
    }
    if let Some(j) = c.keys.iter().position(|&k| pg_sys::equal(k.cast(), node.cast())) {
        return param(c.aggs.len() + j + 1, node);
    }
    pg::mutate_children(node, replace_with_params, ctx)
}

//! The analyzed Query as a `ViewPlan`: what the delta rules need, for a
//! query that `delta::first_unmaintained` found maintainable (a join block of
//! base tables, then a bag or groups).

use super::to_ir::{collect, deparse, deparse_context, find_target, flatten_join_aliases};
use crate::delta::plan::{Agg, AggKind, Input, OutputColumn, Shape, Spj, ViewPlan};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

pub unsafe fn view_plan(q: *mut pg_sys::Query) -> ViewPlan {
    let (names, namespaces) = deparse_context(q, std::ptr::null_mut());
    let ex = |node: *mut pg_sys::Node| deparse(q, namespaces, node, false);

    // The join block: every base table of the FROM clause, and the
    // conjunction of join conditions and WHERE.
    let mut rtindexes = Vec::new();
    let mut quals = Vec::new();
    for item in pg::list::<pg_sys::Node>((*(*q).jointree).fromlist) {
        join_tree(item, &mut rtindexes, &mut quals);
    }
    if !(*(*q).jointree).quals.is_null() {
        quals.push((*(*q).jointree).quals);
    }
    let used = used_columns(q);
    let inputs = rtindexes
        .iter()
        .map(|&rt| {
            let rte = pg_sys::list_nth((*q).rtable, rt - 1) as *mut pg_sys::RangeTblEntry;
            let attnos: Vec<i16> = used.iter().filter(|(r, _)| *r == rt).map(|(_, a)| *a).collect();
            let mut columns = Vec::new();
            let mut consolidate = true;
            for a in attnos {
                columns.push(pg::cstr(pg_sys::get_attname((*rte).relid, a, false)));
                let typid = pg_sys::get_atttype((*rte).relid, a);
                consolidate &= pg::has_equality(typid);
            }
            Input {
                alias: pg::quote_ident(&names[(rt - 1) as usize]),
                relid: (*rte).relid.to_u32(),
                relation: pg::qualified_relation_name((*rte).relid),
                columns,
                consolidate,
            }
        })
        .collect();
    let predicate = if quals.is_empty() { None } else { Some(quals.iter().map(|&n| ex(n)).collect::<Vec<_>>().join(" AND ")) };
    let spj = Spj { inputs, predicate };

    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    let all_targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
    let grouped = (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).havingQual.is_null();
    let distinct = !(*q).distinctClause.is_null();
    if !grouped && !distinct {
        let columns =
            targets.iter().map(|t| OutputColumn { name: pg::cstr((**t).resname), sql: ex((**t).expr.cast()), key: None }).collect();
        return ViewPlan { spj, shape: Shape::Bag { columns } };
    }

    // Groups: GROUP BY keys, or for DISTINCT every output column.
    let key_clause = if grouped { (*q).groupClause } else { (*q).distinctClause };
    let key_targets: Vec<*mut pg_sys::TargetEntry> = pg::list::<pg_sys::SortGroupClause>(key_clause)
        .into_iter()
        .filter_map(|g| find_target(&all_targets, (*g).tleSortGroupRef))
        .collect();
    let key_exprs: Vec<*mut pg_sys::Node> = key_targets.iter().map(|t| (**t).expr.cast()).collect();
    let keys: Vec<String> = key_exprs.iter().map(|&e| ex(e)).collect();

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
    let aggs = agg_nodes.iter().map(|&n| aggregate(n as *mut pg_sys::Aggref, &ex)).collect();

    // Output columns and HAVING over placeholders: $i for aggregate i, $(m+j) for key j.
    let mut ctx = Placeholders { aggs: agg_nodes.clone(), keys: key_exprs.clone() };
    let columns = targets
        .iter()
        .map(|t| {
            let key = key_targets.iter().position(|k| *k == *t);
            let mutated = placeholders((**t).expr.cast(), &mut ctx);
            OutputColumn { name: pg::cstr((**t).resname), sql: deparse(q, namespaces, mutated, true), key }
        })
        .collect();
    let having = (!(*q).havingQual.is_null()).then(|| {
        let mutated = placeholders((*q).havingQual, &mut ctx);
        deparse(q, namespaces, mutated, true)
    });
    ViewPlan { spj, shape: Shape::Grouped { keys, aggs, columns, having } }
}

unsafe fn join_tree(item: *mut pg_sys::Node, rtindexes: &mut Vec<i32>, quals: &mut Vec<*mut pg_sys::Node>) {
    use pg_sys::NodeTag::*;
    match (*item).type_ {
        T_RangeTblRef => rtindexes.push((*(item as *mut pg_sys::RangeTblRef)).rtindex),
        T_JoinExpr => {
            let j = item as *mut pg_sys::JoinExpr;
            join_tree((*j).larg, rtindexes, quals);
            join_tree((*j).rarg, rtindexes, quals);
            if !(*j).quals.is_null() {
                quals.push((*j).quals);
            }
        }
        T_FromExpr => {
            let f = item as *mut pg_sys::FromExpr;
            for i in pg::list::<pg_sys::Node>((*f).fromlist) {
                join_tree(i, rtindexes, quals);
            }
            if !(*f).quals.is_null() {
                quals.push((*f).quals);
            }
        }
        _ => {}
    }
}

unsafe fn aggregate(a: *mut pg_sys::Aggref, ex: &dyn Fn(*mut pg_sys::Node) -> String) -> Agg {
    let name = pg::cstr(pg_sys::get_func_name((*a).aggfnoid));
    let args: Vec<*mut pg_sys::TargetEntry> = pg::list((*a).args);
    let arg = args.first().map(|t| ex((**t).expr.cast()));
    let distinct = !(*a).aggdistinct.is_null();
    let kind = match (name.as_str(), arg.is_some()) {
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
        (other, _) => unreachable!("aggregate {other} passed delta::maintenance"),
    };
    Agg {
        kind,
        arg,
        filter: (!(*a).aggfilter.is_null()).then(|| ex((*a).aggfilter.cast())),
        result_type: pg::cstr(pg_sys::format_type_be((*a).aggtype)),
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
unsafe fn param(id: usize, expr: *mut pg_sys::Node) -> *mut pg_sys::Node {
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
    // SAFETY: PostgreSQL declares the mutator callback without a prototype
    // and calls it as (Node *, void *), which is this function's signature.
    let mutator: unsafe extern "C-unwind" fn() -> *mut pg_sys::Node =
        std::mem::transmute(replace_with_params as unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> *mut pg_sys::Node);
    pg_sys::expression_tree_mutator(node, Some(mutator), ctx)
}

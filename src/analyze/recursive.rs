//! WITH RECURSIVE: a recursive CTE is one component, kept by an internal
//! view computed again when a table it reads changes (see
//! `delta::recompute`). A query that is just such a CTE (`SELECT ... FROM
//! reach`) is that component itself; in any other query, each reference to
//! a recursive CTE becomes a sub-query `WITH RECURSIVE ... SELECT * FROM
//! reach`, which becomes the internal view.

use super::sublinks::{new_select, range_table_ref};
use super::to_ir::{collect, deparse, deparse_context};
use crate::delta::recompute::{Rederive, Seed, SemiNaive, DELTA_ALIAS, KEPT_CTE, NOT_IN_VIEW, STEP_CTE, VIEW_CTE};
use crate::pg;
use pgrx::pg_sys;

/// The recursive CTE a range table entry of `q` reads, if any.
unsafe fn recursive_cte(q: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> bool {
    if (*rte).rtekind != pg_sys::RTEKind::RTE_CTE || (*rte).ctelevelsup != 0 || (*rte).self_reference {
        return false;
    }
    let name = pg::cstr((*rte).ctename);
    pg::list::<pg_sys::CommonTableExpr>((*q).cteList).into_iter().any(|c| pg::cstr((*c).ctename) == name && (*c).cterecursive)
}

/// Whether `q` is one recursive component: a plain projection of a recursive CTE.
pub(super) unsafe fn is_component(q: *mut pg_sys::Query) -> bool {
    let from: Vec<*mut pg_sys::Node> = pg::list((*(*q).jointree).fromlist);
    (*q).hasRecursive
        && from.len() == 1
        && pg::is_a(from[0], pg_sys::NodeTag::T_RangeTblRef)
        && recursive_cte(q, pg_sys::list_nth((*q).rtable, (*(from[0] as *mut pg_sys::RangeTblRef)).rtindex - 1).cast())
        && (*(*q).jointree).quals.is_null()
        && !(*q).hasAggs
        && (*q).groupClause.is_null()
        && (*q).havingQual.is_null()
        && !(*q).hasWindowFuncs
        && (*q).distinctClause.is_null()
        && (*q).limitCount.is_null()
        && (*q).limitOffset.is_null()
        && !(*q).hasSubLinks
        && (*q).setOperations.is_null()
}

/// In a query that is not one component, make every reference to a
/// recursive CTE in its FROM a sub-query holding the CTEs and `SELECT * FROM` it.
pub(super) unsafe fn components_as_subqueries(q: *mut pg_sys::Query) {
    if !(*q).hasRecursive || is_component(q) {
        return;
    }
    for rte in pg::list::<pg_sys::RangeTblEntry>((*q).rtable) {
        if !recursive_cte(q, rte) {
            continue;
        }
        let c = new_select();
        (*c).cteList = pg_sys::copyObjectImpl((*q).cteList.cast()).cast();
        (*c).hasRecursive = true;
        let cte_ref = pg_sys::copyObjectImpl(rte.cast()) as *mut pg_sys::RangeTblEntry;
        (*c).rtable = pg_sys::lappend(std::ptr::null_mut(), cte_ref.cast());
        (*c).jointree = pg_sys::makeFromExpr(pg_sys::lappend(std::ptr::null_mut(), range_table_ref(1).cast()), std::ptr::null_mut());
        let names: Vec<*mut pg_sys::Node> = pg::list((*(*cte_ref).eref).colnames);
        let types: Vec<pg_sys::Oid> =
            (0..pg_sys::list_length((*cte_ref).coltypes)).map(|i| pg_sys::list_nth_oid((*cte_ref).coltypes, i)).collect();
        let typmods: Vec<i32> =
            (0..pg_sys::list_length((*cte_ref).coltypmods)).map(|i| pg_sys::list_nth_int((*cte_ref).coltypmods, i)).collect();
        let colls: Vec<pg_sys::Oid> =
            (0..pg_sys::list_length((*cte_ref).colcollations)).map(|i| pg_sys::list_nth_oid((*cte_ref).colcollations, i)).collect();
        let mut targets: *mut pg_sys::List = std::ptr::null_mut();
        for (i, name) in names.iter().enumerate() {
            let var = pg_sys::makeVar(1, (i + 1) as i16, types[i], typmods[i], colls[i], 0);
            let name = pg_sys::pstrdup((*(*name as *mut pg_sys::String)).sval);
            targets = pg_sys::lappend(targets, pg_sys::makeTargetEntry(var.cast(), (i + 1) as i16, name, false).cast());
        }
        (*c).targetList = targets;
        // The reference becomes that sub-query (its alias and columns kept).
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = c;
        (*rte).ctename = std::ptr::null_mut();
        (*rte).ctelevelsup = 0;
        (*rte).coltypes = std::ptr::null_mut();
        (*rte).coltypmods = std::ptr::null_mut();
        (*rte).colcollations = std::ptr::null_mut();
    }
}

/// Every table a query reads, at any depth (a recursive CTE's included).
pub(super) unsafe fn tables_read(q: *mut pg_sys::Query) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    tables_walker(q.cast(), (&mut out as *mut Vec<u32>).cast());
    out
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn tables_walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_RangeTblEntry) {
        let rte = node as *mut pg_sys::RangeTblEntry;
        // (A stored view's query also lists the view itself, as OLD and NEW: not a table.)
        if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && pg_sys::get_rel_relkind((*rte).relid) as u8 == pg_sys::RELKIND_RELATION {
            let out = &mut *(ctx as *mut Vec<u32>);
            if !out.contains(&(*rte).relid.to_u32()) {
                out.push((*rte).relid.to_u32());
            }
        }
        return false;
    }
    if pg::is_a(node, pg_sys::NodeTag::T_Query) {
        return super::flatten::query_tree_walker(node.cast(), Some(tables_walker), ctx, pg_sys::QTW_EXAMINE_RTES_BEFORE as i32);
    }
    pg_sys::expression_tree_walker(node, Some(tables_walker), ctx)
}

/// The semi-naive plan of a component (see `delta::recompute`), when its
/// inserts can be applied so: one recursive CTE, `UNION` (not `ALL`), the
/// query selecting all its columns in order, and both terms joins of plain
/// tables (inner joins, no sub-queries, aggregates, DISTINCT, LIMIT, window
/// functions or volatile functions: a new row can only add rows).
pub(super) unsafe fn semi_naive(q: *mut pg_sys::Query) -> Option<SemiNaive> {
    let ctes: Vec<*mut pg_sys::CommonTableExpr> = pg::list((*q).cteList);
    let [cte] = ctes[..] else { return None };
    let cq = (*cte).ctequery as *mut pg_sys::Query;
    if !(*cte).cterecursive || !pg::is_a(cq, pg_sys::NodeTag::T_Query) {
        return None;
    }
    let setop = (*cq).setOperations as *mut pg_sys::SetOperationStmt;
    if !pg::is_a(setop, pg_sys::NodeTag::T_SetOperationStmt) || (*setop).op != pg_sys::SetOperation::SETOP_UNION || (*setop).all {
        return None;
    }
    let term = |n: *mut pg_sys::Node| -> Option<*mut pg_sys::Query> {
        if !pg::is_a(n, pg_sys::NodeTag::T_RangeTblRef) {
            return None;
        }
        let rte = pg_sys::list_nth((*cq).rtable, (*(n as *mut pg_sys::RangeTblRef)).rtindex - 1) as *mut pg_sys::RangeTblEntry;
        ((*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY).then_some((*rte).subquery)
    };
    let (base, recursive) = (term((*setop).larg)?, term((*setop).rarg)?);
    // The view is the CTE itself: its columns, in order, by their names
    // (from its one FROM item: a stored view's query lists OLD and NEW first).
    let from: Vec<*mut pg_sys::RangeTblRef> = pg::list((*(*q).jointree).fromlist);
    let cte_ref = (*from[0]).rtindex;
    let columns: Vec<String> = pg::list::<pg_sys::String>((*cte).ctecolnames).into_iter().map(|s| pg::cstr((*s).sval)).collect();
    let targets: Vec<*mut pg_sys::TargetEntry> =
        pg::list::<pg_sys::TargetEntry>((*q).targetList).into_iter().filter(|t| !(**t).resjunk).collect();
    let identity = targets.len() == columns.len()
        && targets.iter().enumerate().all(|(i, t)| {
            let v = (**t).expr as *mut pg_sys::Var;
            pg::is_a(v, pg_sys::NodeTag::T_Var)
                && (*v).varno == cte_ref
                && (*v).varlevelsup == 0
                && (*v).varattno as usize == i + 1
                && pg::cstr((**t).resname) == columns[i]
        });
    if !identity || !monotone(base, false) || !monotone(recursive, true) {
        return None;
    }
    // The recursive reference's columns the recursive term joins on (but
    // the first: the index on all columns serves it).
    let self_ref =
        pg::list::<pg_sys::RangeTblEntry>((*recursive).rtable).iter().position(|r| (**r).rtekind == pg_sys::RTEKind::RTE_CTE)? + 1;
    let mut vars = Vec::new();
    collect((*recursive).jointree.cast(), pg_sys::NodeTag::T_Var, &mut vars);
    let mut joined: Vec<String> = Vec::new();
    for v in vars.into_iter().map(|v| v as *mut pg_sys::Var) {
        if (*v).varno as usize == self_ref && (*v).varlevelsup == 0 && (*v).varattno > 1 {
            let name = columns.get((*v).varattno as usize - 1)?.clone();
            if !joined.contains(&name) {
                joined.push(name);
            }
        }
    }
    let nest = pg::push_search_path(c"");
    let plan = seeds_and_step(base, recursive).map(|(seeds, step, targets, rederive)| SemiNaive {
        name: pg::cstr((*cte).ctename),
        columns,
        seeds,
        step,
        targets,
        joined,
        rederive,
    });
    pg_sys::AtEOXact_GUC(true, nest);
    plan
}

/// Whether a term is a join of plain tables (and, for the recursive one,
/// the recursive reference) under conditions, with no operator that could
/// make a new row take rows away or that would change between runs.
unsafe fn monotone(t: *mut pg_sys::Query, recursive: bool) -> bool {
    let plain = !(*t).hasAggs
        && (*t).groupClause.is_null()
        && (*t).groupingSets.is_null()
        && (*t).havingQual.is_null()
        && !(*t).hasWindowFuncs
        && !(*t).hasTargetSRFs
        && !(*t).hasSubLinks
        && (*t).distinctClause.is_null()
        && (*t).sortClause.is_null()
        && (*t).limitCount.is_null()
        && (*t).limitOffset.is_null()
        && (*t).setOperations.is_null()
        && (*t).cteList.is_null()
        && (*t).rowMarks.is_null()
        && !pg_sys::contain_volatile_functions(t.cast());
    plain
        && pg::list::<pg_sys::RangeTblEntry>((*t).rtable).into_iter().all(|rte| match (*rte).rtekind {
            pg_sys::RTEKind::RTE_RELATION => {
                (*rte).tablesample.is_null() && pg_sys::get_rel_relkind((*rte).relid) as u8 == pg_sys::RELKIND_RELATION
            }
            // (Named joins hide the names of what they join, which the
            // step's conditions are written with.)
            pg_sys::RTEKind::RTE_JOIN => (*rte).jointype == pg_sys::JoinType::JOIN_INNER && (*rte).alias.is_null(),
            pg_sys::RTEKind::RTE_CTE => recursive && (*rte).self_reference,
            _ => false,
        })
}

/// What `seeds_and_step` writes: the seeds, the step, its output
/// expressions, and the texts deletes are applied with where they can be.
type SeedsAndStep = (Vec<Seed>, String, Vec<String>, Option<Rederive>);

/// The seeds (each term with one table occurrence marked to read inserted
/// rows), the step (the recursive term with `NOT_IN_VIEW` among its
/// conditions) and its output expressions; None where ruleutils does not
/// write the marks as expected. Under `search_path = ''`.
unsafe fn seeds_and_step(base: *mut pg_sys::Query, recursive: *mut pg_sys::Query) -> Option<SeedsAndStep> {
    let mut seeds = Vec::new();
    for (t, is_recursive) in [(base, false), (recursive, true)] {
        let n = pg_sys::list_length((*t).rtable);
        for i in 0..n {
            let rte = pg_sys::list_nth((*t).rtable, i) as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            let c = pg_sys::copyObjectImpl(t.cast()) as *mut pg_sys::Query;
            if is_recursive {
                // The recursive reference reads the view's rows.
                rename_recursive_reference(c, VIEW_CTE);
            }
            let marked = pg_sys::list_nth((*c).rtable, i) as *mut pg_sys::RangeTblEntry;
            let alias = pg_sys::pstrdup(std::ffi::CString::new(DELTA_ALIAS).expect("no NUL").as_ptr());
            (*marked).alias = if (*marked).alias.is_null() {
                pg_sys::makeAlias(alias, std::ptr::null_mut())
            } else {
                let a = pg_sys::copyObjectImpl((*marked).alias.cast()) as *mut pg_sys::Alias;
                (*a).aliasname = alias;
                a
            };
            let sql = pg::cstr(pg_sys::pg_get_querydef(c, false));
            let marker = format!("{} {DELTA_ALIAS}", pg::qualified_relation_name((*rte).relid));
            if sql.matches(&marker).count() != 1 || (is_recursive && !sql.contains(&format!("{VIEW_CTE} "))) {
                return None;
            }
            let sql = sql.replace(&format!("ONLY {marker}"), &marker);
            seeds.push(Seed { relid: (*rte).relid.to_u32(), marker, sql });
        }
    }
    // The step: its output expressions, and the condition's placeholder.
    let c = pg_sys::copyObjectImpl(recursive.cast()) as *mut pg_sys::Query;
    let (_, namespaces) = deparse_context(c, std::ptr::null_mut());
    let targets: Vec<String> = pg::list::<pg_sys::TargetEntry>((*c).targetList)
        .into_iter()
        .filter(|t| !(**t).resjunk)
        .map(|t| deparse(c, namespaces, (*t).expr.cast(), false))
        .collect();
    let param = pg_sys::palloc0(std::mem::size_of::<pg_sys::Param>()) as *mut pg_sys::Param;
    (*param).xpr.type_ = pg_sys::NodeTag::T_Param;
    (*param).paramkind = pg_sys::ParamKind::PARAM_EXTERN;
    (*param).paramid = NOT_IN_VIEW[1..].parse().expect("a parameter number");
    (*param).paramtype = pg_sys::BOOLOID;
    (*param).paramtypmod = -1;
    (*param).location = -1;
    let jt = (*c).jointree;
    (*jt).quals = if (*jt).quals.is_null() {
        param.cast()
    } else {
        let both = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), (*jt).quals.cast()), param.cast());
        pg_sys::make_andclause(both).cast()
    };
    let step = pg::cstr(pg_sys::pg_get_querydef(c, false));
    rename_recursive_reference(c, STEP_CTE);
    let step_named = pg::cstr(pg_sys::pg_get_querydef(c, false));
    let kept = pg_sys::copyObjectImpl(recursive.cast()) as *mut pg_sys::Query;
    rename_recursive_reference(kept, KEPT_CTE);
    let rederive = Rederive {
        base: pg::cstr(pg_sys::pg_get_querydef(base, false)),
        kept: pg::cstr(pg_sys::pg_get_querydef(kept, false)),
        step: step_named,
    };
    let marked = step.matches(NOT_IN_VIEW).count() == 1 && rederive.step.matches(NOT_IN_VIEW).count() == 1;
    let named = rederive.step.contains(&format!("{STEP_CTE} ")) && rederive.kept.contains(&format!("{KEPT_CTE} "));
    // Deletes: only where no table occurs twice in a term (see `Rederive`).
    let once = [base, recursive].iter().all(|t| {
        let relids: Vec<pg_sys::Oid> = pg::list::<pg_sys::RangeTblEntry>((**t).rtable)
            .into_iter()
            .filter(|r| (**r).rtekind == pg_sys::RTEKind::RTE_RELATION)
            .map(|r| (*r).relid)
            .collect();
        relids.iter().enumerate().all(|(i, r)| !relids[..i].contains(r))
    });
    marked.then_some((seeds, step, targets, (named && once).then_some(rederive)))
}

/// Make the recursive reference of term `q` read CTE `name` instead.
unsafe fn rename_recursive_reference(q: *mut pg_sys::Query, name: &str) {
    for rte in pg::list::<pg_sys::RangeTblEntry>((*q).rtable) {
        if (*rte).rtekind == pg_sys::RTEKind::RTE_CTE {
            (*rte).ctename = pg_sys::pstrdup(std::ffi::CString::new(name).expect("no NUL").as_ptr());
            (*rte).self_reference = false;
            (*rte).ctelevelsup = 0;
        }
    }
}

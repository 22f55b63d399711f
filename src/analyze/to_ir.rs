//! The analyzed Query as a relational IR tree.
//!
//! Expressions are deparsed by ruleutils with a namespace stack built from the
//! query's own range tables (the same machinery EXPLAIN VERBOSE uses), after
//! join alias variables are flattened, so every column reference is written
//! as `alias.column` of a base FROM item.

use crate::ir::{AggCall, Column, JoinKind, Node, SetOpKind, SubLink, SubqueryOrigin};
use crate::pg;
use pgrx::pg_sys;
use std::ffi::c_void;

/// One query level: the Query and its deparse namespaces (this level first,
/// then the enclosing levels, as ruleutils expects for correlated references).
struct Level {
    query: *mut pg_sys::Query,
    names: Vec<String>,
    namespaces: *mut pg_sys::List,
}

struct Builder<'a> {
    /// Enclosing levels, innermost last.
    levels: Vec<Level>,
    notices: &'a mut Vec<String>,
    /// Conjuncts of the top level's WHERE maintained as anti-joins (NOT EXISTS).
    anti: &'a [*mut pg_sys::Node],
}

pub unsafe fn query_to_ir(q: *mut pg_sys::Query, anti: &[*mut pg_sys::Node], notices: &mut Vec<String>) -> Node {
    let mut b = Builder { levels: Vec::new(), notices, anti };
    b.query(q, true)
}

impl Builder<'_> {
    unsafe fn push_level(&mut self, q: *mut pg_sys::Query) {
        let outer = self.levels.last().map(|l| l.namespaces).unwrap_or(std::ptr::null_mut());
        let (names, namespaces) = deparse_context(q, outer);
        self.levels.push(Level { query: q, names, namespaces });
    }

    fn level(&self) -> &Level {
        self.levels.last().expect("a query level")
    }

    /// Deparse an expression of the current level.
    unsafe fn expr(&self, node: *mut pg_sys::Node) -> String {
        let level = self.level();
        deparse(level.query, level.namespaces, node, false)
    }

    unsafe fn query(&mut self, q: *mut pg_sys::Query, top: bool) -> Node {
        self.push_level(q);
        let node = self.query_body(q, top);
        self.levels.pop();
        node
    }

    unsafe fn query_body(&mut self, q: *mut pg_sys::Query, top: bool) -> Node {
        let mut node = if !(*q).setOperations.is_null() { self.set_operation((*q).setOperations) } else { self.select(q) };
        let has_limit = !(*q).limitCount.is_null() || !(*q).limitOffset.is_null();
        if !(*q).sortClause.is_null() || has_limit {
            let keys = self.sort_keys(q);
            if has_limit || !top {
                node = Node::Sort {
                    keys,
                    limit: (!(*q).limitCount.is_null()).then(|| self.expr((*q).limitCount)),
                    offset: (!(*q).limitOffset.is_null()).then(|| self.expr((*q).limitOffset)),
                    input: Box::new(node),
                };
            } else if !(*q).hasDistinctOn {
                // (DISTINCT ON picks the first row of each key by this ORDER BY.)
                self.notices
                    .push("ORDER BY without LIMIT is ignored: a view, like a table, has no row order; use ORDER BY when reading it".into());
            }
        }
        node
    }

    unsafe fn select(&mut self, q: *mut pg_sys::Query) -> Node {
        let jointree = (*q).jointree;
        let mut node = self.join_tree_list((*jointree).fromlist);
        if !(*jointree).quals.is_null() {
            node = self.filter((*jointree).quals, node);
        }
        let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
        if (*q).hasAggs || !(*q).groupClause.is_null() || !(*q).groupingSets.is_null() || !(*q).havingQual.is_null() {
            let group_by = pg::list::<pg_sys::SortGroupClause>((*q).groupClause)
                .into_iter()
                .filter_map(|g| find_target(&targets, (*g).tleSortGroupRef).map(|t| self.expr((*t).expr.cast())))
                .collect();
            let mut aggregates = Vec::new();
            for t in &targets {
                self.collect_aggregates((*(*t)).expr.cast(), &mut aggregates);
            }
            self.collect_aggregates((*q).havingQual, &mut aggregates);
            node = Node::Aggregate { group_by, grouping_sets: !(*q).groupingSets.is_null(), aggregates, input: Box::new(node) };
            if !(*q).havingQual.is_null() {
                node = self.filter((*q).havingQual, node);
            }
        }
        if (*q).hasWindowFuncs {
            let mut found = Vec::new();
            for t in &targets {
                collect((*(*t)).expr.cast(), pg_sys::NodeTag::T_WindowFunc, &mut found);
            }
            let mut partitions: Vec<Vec<String>> = Vec::new();
            for f in &found {
                let winref = (*(*f as *mut pg_sys::WindowFunc)).winref;
                if let Some(w) = pg::list::<pg_sys::WindowClause>((*q).windowClause).into_iter().find(|w| (**w).winref == winref) {
                    let keys: Vec<String> = pg::list::<pg_sys::SortGroupClause>((*w).partitionClause)
                        .into_iter()
                        .filter_map(|g| find_target(&targets, (*g).tleSortGroupRef).map(|t| self.expr((*t).expr.cast())))
                        .collect();
                    if !partitions.contains(&keys) {
                        partitions.push(keys);
                    }
                }
            }
            // Windows over different PARTITION BY lists are recomputed by
            // the keys common to all of them: each of their partitions lies
            // within one partition of those.
            let partition =
                partitions.into_iter().reduce(|common, keys| common.into_iter().filter(|k| keys.contains(k)).collect()).unwrap_or_default();
            let functions = found.into_iter().map(|f| self.expr_with_windows(q, f)).collect();
            node = Node::Window { functions, partition, input: Box::new(node) };
        }
        let mut sublinks = Vec::new();
        let columns = targets
            .iter()
            .filter(|t| !(*(**t)).resjunk)
            .map(|t| {
                self.collect_sublinks((*(*t)).expr.cast(), &mut sublinks);
                Column { name: pg::cstr((*(*t)).resname), sql: self.expr_with_windows(q, (*(*t)).expr.cast()) }
            })
            .collect();
        node = Node::Project { columns, sublinks, input: Box::new(node) };
        if !(*q).distinctClause.is_null() {
            let on = (*q).hasDistinctOn.then(|| {
                pg::list::<pg_sys::SortGroupClause>((*q).distinctClause)
                    .into_iter()
                    .filter_map(|g| find_target(&targets, (*g).tleSortGroupRef).map(|t| self.expr((*t).expr.cast())))
                    .collect()
            });
            node = Node::Distinct { on, input: Box::new(node) };
        }
        node
    }

    unsafe fn filter(&mut self, quals: *mut pg_sys::Node, input: Node) -> Node {
        let mut sublinks = Vec::new();
        let conjuncts: Vec<*mut pg_sys::Node> = pg::list(pg_sys::make_ands_implicit(quals.cast()));
        for c in conjuncts {
            let anti = self.levels.len() == 1 && self.anti.contains(&c);
            let from = sublinks.len();
            self.collect_sublinks(c, &mut sublinks);
            for s in &mut sublinks[from..] {
                s.anti = anti;
            }
        }
        Node::Filter { predicate: self.expr(quals), sublinks, input: Box::new(input) }
    }

    unsafe fn join_tree_list(&mut self, list: *mut pg_sys::List) -> Node {
        let items: Vec<*mut pg_sys::Node> = pg::list(list);
        let mut iter = items.into_iter();
        let Some(first) = iter.next() else {
            return Node::Constant { alias: "(none)".into(), detail: "no FROM clause: one row".into(), maintained: false };
        };
        let mut node = self.join_tree_item(first);
        for item in iter {
            node = Node::Join {
                kind: JoinKind::Cross,
                condition: None,
                keyed: false,
                lookup: false,
                left: Box::new(node),
                right: Box::new(self.join_tree_item(item)),
            };
        }
        node
    }

    unsafe fn join_tree_item(&mut self, item: *mut pg_sys::Node) -> Node {
        use pg_sys::NodeTag::*;
        match (*item).type_ {
            T_RangeTblRef => self.range_table_entry((*(item as *mut pg_sys::RangeTblRef)).rtindex),
            T_JoinExpr => {
                let j = item as *mut pg_sys::JoinExpr;
                let left = self.join_tree_item((*j).larg);
                let right = self.join_tree_item((*j).rarg);
                let quals = (*j).quals;
                let kind = match (*j).jointype {
                    pg_sys::JoinType::JOIN_INNER if quals.is_null() => JoinKind::Cross,
                    pg_sys::JoinType::JOIN_INNER => JoinKind::Inner,
                    pg_sys::JoinType::JOIN_LEFT => JoinKind::Left,
                    pg_sys::JoinType::JOIN_RIGHT => JoinKind::Right,
                    pg_sys::JoinType::JOIN_FULL => JoinKind::Full,
                    pg_sys::JoinType::JOIN_SEMI => JoinKind::Semi,
                    pg_sys::JoinType::JOIN_ANTI => JoinKind::Anti,
                    _ => JoinKind::Inner,
                };
                let condition = (!quals.is_null()).then(|| self.expr(quals));
                let q = self.level().query;
                let sides = super::outer::padded_sides(j);
                let keyed = !sides.is_empty()
                    && sides.into_iter().all(|(kept, keys)| {
                        super::outer::split(q, quals, &super::outer::relations_under(kept), &super::outer::relations_under(keys)).is_some()
                    });
                let lookup = super::outer::lookup_side(q, j).is_some();
                Node::Join { kind, condition, keyed, lookup, left: Box::new(left), right: Box::new(right) }
            }
            T_FromExpr => {
                let f = item as *mut pg_sys::FromExpr;
                let node = self.join_tree_list((*f).fromlist);
                if (*f).quals.is_null() {
                    node
                } else {
                    self.filter((*f).quals, node)
                }
            }
            _ => Node::Constant { alias: "?".into(), detail: "unrecognized FROM item".into(), maintained: false },
        }
    }

    unsafe fn range_table_entry(&mut self, rtindex: i32) -> Node {
        let level = self.level();
        let rte = pg_sys::list_nth((*level.query).rtable, rtindex - 1) as *mut pg_sys::RangeTblEntry;
        let alias = pg::quote_ident(&level.names[(rtindex - 1) as usize]);
        use pg_sys::RTEKind::*;
        match (*rte).rtekind {
            RTE_RELATION => Node::Scan {
                relid: (*rte).relid.to_u32(),
                relation: pg::qualified_relation_name((*rte).relid),
                alias,
                partial_tree: pg::partial_tree((*rte).relid, (*rte).inh),
            },
            RTE_SUBQUERY => {
                // An inlined CTE keeps its name (see flatten::inline_ctes).
                let origin = if (*rte).relid != pg_sys::InvalidOid {
                    SubqueryOrigin::View
                } else if !(*rte).ctename.is_null() {
                    SubqueryOrigin::Cte
                } else {
                    SubqueryOrigin::From
                };
                let standalone = super::flatten::is_standalone((*rte).subquery);
                let input = if standalone && self.levels.len() == 1 {
                    // It becomes an internal view: described as that view
                    // maintains its query (sub-links unnested, and so on).
                    let m = super::maintained_form(pg_sys::copyObjectImpl((*rte).subquery.cast()) as *mut pg_sys::Query);
                    let anti: Vec<*mut pg_sys::Node> = m.anti.iter().map(|a| a.conjunct).collect();
                    let mut notices = Vec::new();
                    let mut inner = Builder { levels: Vec::new(), notices: &mut notices, anti: &anti };
                    inner.query(m.query, false)
                } else {
                    self.query((*rte).subquery, false)
                };
                Node::Subquery { alias, origin, standalone, input: Box::new(input) }
            }
            RTE_CTE => {
                let name = pg::cstr((*rte).ctename);
                if (*rte).self_reference {
                    return Node::WorkTable { name };
                }
                let depth = self.levels.len() - 1 - (*rte).ctelevelsup as usize;
                let owner = self.levels[depth].query;
                let cte = pg::list::<pg_sys::CommonTableExpr>((*owner).cteList)
                    .into_iter()
                    .find(|c| pg::cstr((**c).ctename) == name)
                    .expect("CTE referenced by the range table exists");
                let input = self.query((*cte).ctequery.cast(), false);
                let standalone = super::flatten::is_standalone((*cte).ctequery.cast());
                if (*cte).cterecursive {
                    let input = Box::new(Node::RecursiveCte { name, input: Box::new(input) });
                    Node::Subquery { alias, origin: SubqueryOrigin::Cte, standalone, input }
                } else {
                    Node::Subquery { alias, origin: SubqueryOrigin::Cte, standalone, input: Box::new(input) }
                }
            }
            RTE_FUNCTION => {
                let calls: Vec<String> =
                    pg::list::<pg_sys::RangeTblFunction>((*rte).functions).into_iter().map(|f| self.expr((*f).funcexpr)).collect();
                let maintained = calls.len() == 1;
                Node::Constant { alias, detail: format!("function {}", calls.join(", ")), maintained }
            }
            RTE_VALUES => {
                Node::Constant { alias, detail: format!("VALUES ({} rows)", pg_sys::list_length((*rte).values_lists)), maintained: true }
            }
            RTE_JOIN => Node::Constant { alias, detail: "join".into(), maintained: false },
            _ => Node::Constant { alias, detail: "table function".into(), maintained: false },
        }
    }

    unsafe fn set_operation(&mut self, node: *mut pg_sys::Node) -> Node {
        if pg::is_a(node, pg_sys::NodeTag::T_RangeTblRef) {
            return self.range_table_entry((*(node as *mut pg_sys::RangeTblRef)).rtindex);
        }
        let s = node as *mut pg_sys::SetOperationStmt;
        let op = match (*s).op {
            pg_sys::SetOperation::SETOP_INTERSECT => SetOpKind::Intersect,
            pg_sys::SetOperation::SETOP_EXCEPT => SetOpKind::Except,
            _ => SetOpKind::Union,
        };
        let left = self.set_operation((*s).larg);
        let right = self.set_operation((*s).rarg);
        Node::SetOp { op, all: (*s).all, left: Box::new(left), right: Box::new(right) }
    }

    unsafe fn sort_keys(&self, q: *mut pg_sys::Query) -> Vec<String> {
        self.sort_clause((*q).targetList, (*q).sortClause)
    }

    /// ORDER BY items (SortGroupClause list) as `expr [DESC] [NULLS FIRST|LAST]`.
    unsafe fn sort_clause(&self, target_list: *mut pg_sys::List, clause: *mut pg_sys::List) -> Vec<String> {
        let targets: Vec<*mut pg_sys::TargetEntry> = pg::list(target_list);
        pg::list::<pg_sys::SortGroupClause>(clause)
            .into_iter()
            .filter_map(|s| {
                let t = find_target(&targets, (*s).tleSortGroupRef)?;
                Some(format!("{}{}", self.expr((*t).expr.cast()), direction(s)))
            })
            .collect()
    }

    /// Deparse an expression, writing out the window of each window function:
    /// ruleutils prints `OVER (?)` when it deparses outside a whole query, so
    /// each `(?)` is replaced, in order, by the window's PARTITION BY / ORDER BY.
    unsafe fn expr_with_windows(&self, q: *mut pg_sys::Query, node: *mut pg_sys::Node) -> String {
        let mut text = self.expr(node);
        let mut functions = Vec::new();
        collect(node, pg_sys::NodeTag::T_WindowFunc, &mut functions);
        for f in functions {
            let winref = (*(f as *mut pg_sys::WindowFunc)).winref;
            let Some(clause) = pg::list::<pg_sys::WindowClause>((*q).windowClause).into_iter().find(|w| (**w).winref == winref) else {
                continue;
            };
            let targets: Vec<*mut pg_sys::TargetEntry> = pg::list((*q).targetList);
            let mut spec = Vec::new();
            let partition: Vec<String> = pg::list::<pg_sys::SortGroupClause>((*clause).partitionClause)
                .into_iter()
                .filter_map(|g| find_target(&targets, (*g).tleSortGroupRef).map(|t| self.expr((*t).expr.cast())))
                .collect();
            if !partition.is_empty() {
                spec.push(format!("PARTITION BY {}", partition.join(", ")));
            }
            let order = self.sort_clause((*q).targetList, (*clause).orderClause);
            if !order.is_empty() {
                spec.push(format!("ORDER BY {}", order.join(", ")));
            }
            text = text.replacen("OVER (?)", &format!("OVER ({})", spec.join(" ")), 1);
        }
        text
    }

    unsafe fn collect_aggregates(&self, node: *mut pg_sys::Node, out: &mut Vec<AggCall>) {
        let mut found = Vec::new();
        collect(node, pg_sys::NodeTag::T_Aggref, &mut found);
        for n in found {
            let a = n as *mut pg_sys::Aggref;
            if (*a).agglevelsup != 0 {
                continue;
            }
            let sql = self.expr(n);
            if out.iter().any(|c: &AggCall| c.sql == sql) {
                continue;
            }
            out.push(AggCall {
                function: pg::cstr(pg_sys::get_func_name((*a).aggfnoid)),
                builtin: pg_sys::get_func_namespace((*a).aggfnoid).to_u32() == pg_sys::PG_CATALOG_NAMESPACE,
                sql,
                distinct: !(*a).aggdistinct.is_null(),
                has_filter: !(*a).aggfilter.is_null(),
                has_order_by: !(*a).aggorder.is_null(),
            });
        }
    }

    unsafe fn collect_sublinks(&mut self, node: *mut pg_sys::Node, out: &mut Vec<SubLink>) {
        let mut found = Vec::new();
        collect(node, pg_sys::NodeTag::T_SubLink, &mut found);
        for n in found {
            let s = n as *mut pg_sys::SubLink;
            let sub = (*s).subselect as *mut pg_sys::Query;
            let kind = match (*s).subLinkType {
                pg_sys::SubLinkType::EXISTS_SUBLINK => "EXISTS",
                pg_sys::SubLinkType::ALL_SUBLINK => "ALL",
                pg_sys::SubLinkType::ANY_SUBLINK => "ANY",
                pg_sys::SubLinkType::ROWCOMPARE_SUBLINK => "row comparison",
                pg_sys::SubLinkType::EXPR_SUBLINK => "scalar",
                pg_sys::SubLinkType::MULTIEXPR_SUBLINK => "multiple assignment",
                pg_sys::SubLinkType::ARRAY_SUBLINK => "ARRAY",
                _ => "subquery",
            };
            let correlated = references_outer(sub);
            let query = self.query(sub, false);
            out.push(SubLink { kind: kind.into(), correlated, anti: false, query: Box::new(query) });
        }
    }
}

/// The unique names ruleutils gives a query's range table entries, and its
/// deparse namespace stack (this level first, then `outer`).
pub(super) unsafe fn deparse_context(q: *mut pg_sys::Query, outer: *mut pg_sys::List) -> (Vec<String>, *mut pg_sys::List) {
    let rtable = (*q).rtable;
    let n = pg_sys::list_length(rtable);
    let mut rels: *mut pg_sys::Bitmapset = std::ptr::null_mut();
    if n > 0 {
        rels = pg_sys::bms_add_range(rels, 1, n);
    }
    let names_list = pg_sys::select_rtable_names_for_explain(rtable, rels);
    let names = pg::list::<std::ffi::c_char>(names_list).into_iter().map(|p| pg::cstr(p)).collect();
    // EXPLAIN's deparse context needs only the range table of a PlannedStmt.
    let stmt = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlannedStmt>()) as *mut pg_sys::PlannedStmt;
    (*stmt).type_ = pg_sys::NodeTag::T_PlannedStmt;
    (*stmt).rtable = rtable;
    let mut namespaces = pg_sys::deparse_context_for_plan_tree(stmt, names_list);
    if !outer.is_null() {
        namespaces = pg_sys::list_concat(namespaces, outer);
    }
    (names, namespaces)
}

/// Deparse an expression of query `q`, join alias variables flattened so
/// that every column is written `alias.column` of a base FROM item.
pub(super) unsafe fn deparse(
    q: *mut pg_sys::Query,
    namespaces: *mut pg_sys::List,
    node: *mut pg_sys::Node,
    show_implicit_casts: bool,
) -> String {
    let flat = flatten_join_aliases(q, node);
    pg::cstr(pg_sys::deparse_expression(flat, namespaces, true, show_implicit_casts))
}

/// How an ORDER BY item orders: "", " DESC", " NULLS FIRST", " DESC NULLS LAST".
pub(super) unsafe fn direction(s: *mut pg_sys::SortGroupClause) -> String {
    let mut out = String::new();
    let mut reverse = false;
    pg_sys::get_equality_op_for_ordering_op((*s).sortop, &mut reverse);
    if reverse {
        out.push_str(" DESC");
    }
    if (*s).nulls_first != reverse {
        out.push_str(if (*s).nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
    }
    out
}

pub(super) unsafe fn find_target(targets: &[*mut pg_sys::TargetEntry], sortgroupref: pg_sys::Index) -> Option<*mut pg_sys::TargetEntry> {
    targets.iter().copied().find(|t| (**t).ressortgroupref == sortgroupref)
}

pub(super) unsafe fn flatten_join_aliases(q: *mut pg_sys::Query, node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    #[cfg(feature = "pg15")]
    {
        pg_sys::flatten_join_alias_vars(q, node)
    }
    #[cfg(not(feature = "pg15"))]
    {
        pg_sys::flatten_join_alias_vars(std::ptr::null_mut(), q, node)
    }
}

struct Collect {
    tag: pg_sys::NodeTag,
    out: Vec<*mut pg_sys::Node>,
}

/// Whether `node` has a node of kind `tag` (outside sub-queries, as `collect`).
pub(super) unsafe fn contains(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    let mut found = Vec::new();
    collect(node, tag, &mut found);
    !found.is_empty()
}

/// Nodes of one tag in an expression, not descending into sub-queries
/// (theirs belong to their own level) nor into a found node.
pub(super) unsafe fn collect(node: *mut pg_sys::Node, tag: pg_sys::NodeTag, out: &mut Vec<*mut pg_sys::Node>) {
    let mut c = Collect { tag, out: Vec::new() };
    collect_walker(node, (&mut c as *mut Collect).cast());
    out.extend(c.out);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn collect_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let c = &mut *(ctx as *mut Collect);
    if (*node).type_ == c.tag {
        c.out.push(node);
        return false;
    }
    if (*node).type_ == pg_sys::NodeTag::T_Query {
        return false;
    }
    pg_sys::expression_tree_walker(node, Some(collect_walker), ctx)
}

/// Whether a sub-query refers to columns of an enclosing query.
unsafe fn references_outer(q: *mut pg_sys::Query) -> bool {
    pg_sys::contain_vars_of_level(q.cast(), 1)
}

//! `tide.explain`: the IR flattened into one row per operator.

use crate::delta;
use crate::ir::Node;

/// One row of `tide.explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainRow {
    pub id: i32,
    pub parent: Option<i32>,
    pub depth: i32,
    pub operator: String,
    pub detail: String,
    pub incremental: bool,
    pub rule: String,
    pub reason: Option<String>,
    /// The locks maintenance takes (root row only).
    pub lock: Option<String>,
}

/// Pre-order rows, ids from 1, each with its parent's id.
pub fn explain_rows(root: &Node) -> Vec<ExplainRow> {
    let mut rows = Vec::new();
    push(root, None, None, 0, &mut rows);
    if let Some(first) = rows.first_mut() {
        first.lock = Some(delta::lock_description(root));
    }
    rows
}

fn push(node: &Node, parent_node: Option<&Node>, parent: Option<i32>, depth: i32, rows: &mut Vec<ExplainRow>) {
    let id = rows.len() as i32 + 1;
    let m = delta::maintenance(node, parent_node);
    rows.push(ExplainRow {
        id,
        parent,
        depth,
        operator: node.operator(),
        detail: node.detail(),
        incremental: m.incremental,
        rule: m.rule,
        reason: m.reason,
        lock: None,
    });
    for child in node.children() {
        push(child, Some(node), Some(id), depth + 1, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{AggCall, Column, JoinKind};

    fn scan(relid: u32, alias: &str) -> Node {
        Node::Scan { relid, relation: format!("public.t{relid}"), alias: alias.into(), partial_tree: false }
    }

    #[test]
    fn rows_are_preorder_with_parents() {
        let tree = Node::Project {
            columns: vec![Column { name: "k".into(), sql: "a.k".into() }],
            sublinks: vec![],
            input: Box::new(Node::Aggregate {
                group_by: vec!["a.k".into()],
                grouping_sets: false,
                aggregates: vec![AggCall {
                    function: "count".into(),
                    sql: "count(*)".into(),
                    distinct: false,
                    has_filter: false,
                    has_order_by: false,
                    builtin: true,
                }],
                input: Box::new(Node::Join {
                    kind: JoinKind::Inner,
                    condition: Some("a.id = b.id".into()),
                    keyed: false,
                    lookup: false,
                    left: Box::new(scan(1, "a")),
                    right: Box::new(scan(2, "b")),
                }),
            }),
        };
        let rows = explain_rows(&tree);
        let ops: Vec<_> = rows.iter().map(|r| (r.id, r.parent, r.operator.as_str())).collect();
        assert_eq!(
            ops,
            vec![(1, None, "Project"), (2, Some(1), "Aggregate"), (3, Some(2), "Inner Join"), (4, Some(3), "Scan"), (5, Some(3), "Scan"),]
        );
        assert_eq!(rows[0].detail, "a.k AS k");
        assert_eq!(rows[1].detail, "GROUP BY a.k; count(*)");
        assert_eq!(rows[2].detail, "ON a.id = b.id");
        assert_eq!(rows[3].detail, "public.t1 AS a");
        assert_eq!(rows[4].depth, 3);
        assert_eq!(tree.base_relations(), vec![1, 2]);
    }

    #[test]
    fn self_join_lists_the_table_once() {
        let tree = Node::Join {
            kind: JoinKind::Cross,
            condition: None,
            keyed: false,
            lookup: false,
            left: Box::new(scan(7, "x")),
            right: Box::new(scan(7, "y")),
        };
        assert_eq!(tree.base_relations(), vec![7]);
        assert_eq!(explain_rows(&tree)[0].detail, "");
    }

    #[test]
    fn a_subquery_that_aggregates_is_its_own_view() {
        use crate::ir::SubqueryOrigin;
        let agg = Node::Project {
            columns: vec![Column { name: "k".into(), sql: "b.k".into() }],
            sublinks: vec![],
            input: Box::new(Node::Aggregate {
                group_by: vec!["b.k".into()],
                grouping_sets: false,
                aggregates: vec![],
                input: Box::new(scan(2, "b")),
            }),
        };
        let sub = |standalone| Node::Subquery { alias: "s".into(), origin: SubqueryOrigin::From, standalone, input: Box::new(agg.clone()) };
        let tree = |standalone| Node::Project {
            columns: vec![Column { name: "k".into(), sql: "s.k".into() }],
            sublinks: vec![],
            input: Box::new(sub(standalone)),
        };
        let rows = explain_rows(&tree(true));
        assert!(rows.iter().all(|r| r.incremental));
        assert_eq!(rows[1].rule, crate::delta::SUBQUERY_RULE);
        // The view itself is a bag over the sub-query's table; the group
        // locks are the internal view's.
        let lock = rows[0].lock.clone().unwrap_or_default();
        assert!(lock.starts_with("advisory locks"), "{lock}");
        assert!(lock.contains("sub-query's internal view"), "{lock}");
        // LATERAL (not stand-alone) is refused, naming it.
        let (operator, reason) = crate::delta::first_unmaintained(&tree(false)).expect("refused");
        assert_eq!(operator, "Subquery");
        assert!(reason.contains("LATERAL"), "{reason}");
    }
}

//! The relational IR: what a view's query computes, as a tree of operators.
//!
//! `analyze` builds it from the Query that PostgreSQL's own parser and
//! analyzer produced; the engine compiles it into delta plans; `tide.explain`
//! prints it. Expressions are kept as SQL text deparsed by PostgreSQL's
//! ruleutils, written in terms of the aliases of the FROM items, so that a
//! delta plan can reuse them verbatim over a delta relation bearing the same
//! alias.
//!
//! This module is pure Rust: no pgrx, no PostgreSQL, testable with `cargo test`.

/// The kind of a join, as the query wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Cross,
    Semi,
    Anti,
}

/// A set operation between the branches of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

impl SetOpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SetOpKind::Union => "UNION",
            SetOpKind::Intersect => "INTERSECT",
            SetOpKind::Except => "EXCEPT",
        }
    }
}

/// An aggregate call: `sum(x)`, `count(DISTINCT y) FILTER (WHERE z)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggCall {
    /// Function name as PostgreSQL resolved it (unqualified when in pg_catalog).
    pub function: String,
    /// Whether the function is one of PostgreSQL's own (in pg_catalog).
    pub builtin: bool,
    /// The whole call, deparsed.
    pub sql: String,
    pub distinct: bool,
    pub has_filter: bool,
    pub has_order_by: bool,
}

/// An output column of an operator: an expression and the name it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql: String,
}

/// A sub-query that appears inside an expression (EXISTS, IN, scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct SubLink {
    /// EXISTS, ANY, ALL, EXPR (scalar), ARRAY, ...
    pub kind: String,
    pub correlated: bool,
    /// A NOT EXISTS maintained as an anti-join (its keys kept as an internal view).
    pub anti: bool,
    pub query: Box<Node>,
}

/// One operator of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A base table, read whole (a partitioned or inheritance tree from its
    /// root). `partial_tree`: a partition or child, or a parent read with
    /// ONLY (see `pg::partial_tree`).
    Scan { relid: u32, relation: String, alias: String, partial_tree: bool },
    /// A FROM item that is a sub-query, a CTE reference or an expanded view.
    /// `standalone`: it refers to nothing outside itself (not LATERAL, not
    /// correlated), so it can be computed, and maintained, on its own.
    Subquery { alias: String, origin: SubqueryOrigin, standalone: bool, input: Box<Node> },
    /// A relation that never changes itself: VALUES, a function in FROM
    /// (maybe LATERAL, over the items before it), no FROM at all.
    /// `maintained`: VALUES, or one function (not ROWS FROM of several).
    Constant { alias: String, detail: String, maintained: bool },
    /// A join of two inputs; `condition` is None for a cross join. For an
    /// outer join, `keyed`: the condition is equalities between the sides
    /// (and conditions on one side), so a row's match is found by its keys;
    /// `lookup`: besides, the padded side is one table (see `delta::plan::Lookup`).
    Join { kind: JoinKind, condition: Option<String>, keyed: bool, lookup: bool, left: Box<Node>, right: Box<Node> },
    /// WHERE or HAVING: rows for which the predicate is true.
    Filter { predicate: String, sublinks: Vec<SubLink>, input: Box<Node> },
    /// GROUP BY (possibly empty) with aggregates.
    Aggregate { group_by: Vec<String>, grouping_sets: bool, aggregates: Vec<AggCall>, input: Box<Node> },
    /// Window functions over the input; `partition`: the PARTITION BY keys
    /// common to all of them (their partitions lie within one of those).
    Window { functions: Vec<String>, partition: Vec<String>, input: Box<Node> },
    /// The select list.
    Project { columns: Vec<Column>, sublinks: Vec<SubLink>, input: Box<Node> },
    /// DISTINCT (on = None) or DISTINCT ON (exprs).
    Distinct { on: Option<Vec<String>>, input: Box<Node> },
    /// UNION / INTERSECT / EXCEPT [ALL] over the branches.
    SetOp { op: SetOpKind, all: bool, left: Box<Node>, right: Box<Node> },
    /// ORDER BY, possibly with LIMIT / OFFSET.
    Sort { keys: Vec<String>, limit: Option<String>, offset: Option<String>, input: Box<Node> },
    /// WITH RECURSIVE: a self-referencing CTE.
    RecursiveCte { name: String, input: Box<Node> },
    /// A reference to the recursive CTE from inside its own definition.
    WorkTable { name: String },
}

/// Where a sub-query in FROM came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubqueryOrigin {
    From,
    Cte,
    View,
}

impl Node {
    /// The operator's name as `tide.explain` shows it.
    pub fn operator(&self) -> String {
        match self {
            Node::Scan { .. } => "Scan".into(),
            Node::Subquery { origin, .. } => match origin {
                SubqueryOrigin::From => "Subquery".into(),
                SubqueryOrigin::Cte => "CTE".into(),
                SubqueryOrigin::View => "View".into(),
            },
            Node::Constant { .. } => "Constant".into(),
            Node::Join { kind, .. } => match kind {
                JoinKind::Inner => "Inner Join".into(),
                JoinKind::Left => "Left Join".into(),
                JoinKind::Right => "Right Join".into(),
                JoinKind::Full => "Full Join".into(),
                JoinKind::Cross => "Cross Join".into(),
                JoinKind::Semi => "Semi Join".into(),
                JoinKind::Anti => "Anti Join".into(),
            },
            Node::Filter { .. } => "Filter".into(),
            Node::Aggregate { .. } => "Aggregate".into(),
            Node::Window { .. } => "Window".into(),
            Node::Project { .. } => "Project".into(),
            Node::Distinct { on: None, .. } => "Distinct".into(),
            Node::Distinct { on: Some(_), .. } => "Distinct On".into(),
            Node::SetOp { op, all, .. } => {
                format!("{}{}", op.as_str(), if *all { " ALL" } else { "" })
            }
            Node::Sort { limit: None, offset: None, .. } => "Sort".into(),
            Node::Sort { .. } => "Limit".into(),
            Node::RecursiveCte { .. } => "Recursive CTE".into(),
            Node::WorkTable { .. } => "Recursive Reference".into(),
        }
    }

    /// A one-line description of the operator's parameters.
    pub fn detail(&self) -> String {
        match self {
            Node::Scan { relation, alias, .. } => format!("{relation} AS {alias}"),
            Node::Subquery { alias, .. } => alias.clone(),
            Node::Constant { alias, detail, .. } => format!("{detail} AS {alias}"),
            Node::Join { condition, .. } => condition.clone().map(|c| format!("ON {c}")).unwrap_or_default(),
            Node::Filter { predicate, .. } => predicate.clone(),
            Node::Aggregate { group_by, grouping_sets, aggregates, .. } => {
                let mut parts = Vec::new();
                if !group_by.is_empty() {
                    let kw = if *grouping_sets { "GROUPING SETS over" } else { "GROUP BY" };
                    parts.push(format!("{kw} {}", group_by.join(", ")));
                }
                if !aggregates.is_empty() {
                    let calls: Vec<&str> = aggregates.iter().map(|a| a.sql.as_str()).collect();
                    parts.push(calls.join(", "));
                }
                parts.join("; ")
            }
            Node::Window { functions, .. } => functions.join(", "),
            Node::Project { columns, .. } => columns
                .iter()
                .map(|c| if c.sql == c.name { c.sql.clone() } else { format!("{} AS {}", c.sql, c.name) })
                .collect::<Vec<_>>()
                .join(", "),
            Node::Distinct { on, .. } => on.as_ref().map(|e| format!("ON ({})", e.join(", "))).unwrap_or_default(),
            Node::SetOp { .. } => String::new(),
            Node::Sort { keys, limit, offset, .. } => {
                let mut s = format!("ORDER BY {}", keys.join(", "));
                if keys.is_empty() {
                    s.clear();
                }
                if let Some(l) = limit {
                    s.push_str(&format!(" LIMIT {l}"));
                }
                if let Some(o) = offset {
                    s.push_str(&format!(" OFFSET {o}"));
                }
                s.trim().to_string()
            }
            Node::RecursiveCte { name, .. } | Node::WorkTable { name } => name.clone(),
        }
    }

    /// The operator's inputs, in order, including sub-queries of expressions.
    pub fn children(&self) -> Vec<&Node> {
        match self {
            Node::Scan { .. } | Node::Constant { .. } | Node::WorkTable { .. } => vec![],
            Node::Subquery { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Window { input, .. }
            | Node::Distinct { input, .. }
            | Node::Sort { input, .. }
            | Node::RecursiveCte { input, .. } => vec![input],
            Node::Filter { input, sublinks, .. } | Node::Project { input, sublinks, .. } => {
                let mut v: Vec<&Node> = vec![input];
                v.extend(sublinks.iter().map(|s| s.query.as_ref()));
                v
            }
            Node::Join { left, right, .. } | Node::SetOp { left, right, .. } => vec![left, right],
        }
    }

    /// Every base table the tree reads, in order of first appearance.
    pub fn base_relations(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Scan { relid, .. } = n {
                if !out.contains(relid) {
                    out.push(*relid);
                }
            }
        });
        out
    }

    /// Pre-order traversal.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        for c in self.children() {
            c.walk(f);
        }
    }
}

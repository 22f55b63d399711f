//! Delta rules: for each IR operator, how a change of its inputs becomes a
//! change of its output, and the SQL that applies it.
//!
//! - `plan`: the maintainable shape of a query (join block + bag or groups).
//! - `join`: filter, project and inner joins (linear and bilinear rules).
//! - `aggregate`: GROUP BY / DISTINCT with count, sum, avg, min, max.
//! - `bag`: applying a bag's change to the view's rows.
//!
//! `maintenance` judges each operator; `tide.explain` prints the judgement and
//! `tide.create_view` refuses a query with an operator that is not
//! maintained, naming it: a view is never silently wrong.

pub mod aggregate;
pub mod bag;
pub mod join;
pub mod plan;
pub mod recompute;
pub mod topk;
pub mod window;

use crate::ir::{JoinKind, Node};

/// How one operator is kept up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Whether a change is applied from the change alone (true).
    pub incremental: bool,
    /// The rule used, as `tide.explain` shows it.
    pub rule: String,
    /// Why the operator is not maintained incrementally, when it is not.
    pub reason: Option<String>,
}

fn yes(rule: &str) -> Maintenance {
    Maintenance { incremental: true, rule: rule.into(), reason: None }
}

fn no(what: impl Into<String>) -> Maintenance {
    Maintenance { incremental: false, rule: "not maintained".into(), reason: Some(what.into()) }
}

/// Aggregates maintained from running state.
pub const MAINTAINED_AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "variance",
    "var_samp",
    "var_pop",
    "stddev",
    "stddev_samp",
    "stddev_pop",
];

/// Whether an aggregate is computed again for every group a change touches
/// (see AggKind::Recomputed): all but PostgreSQL's own aggregates of
/// MAINTAINED_AGGREGATES without ORDER BY, DISTINCT only for count and sum.
pub fn recomputed_aggregate(function: &str, builtin: bool, distinct: bool, ordered: bool) -> bool {
    !builtin || !MAINTAINED_AGGREGATES.contains(&function) || ordered || (distinct && !matches!(function, "count" | "sum"))
}

/// How a sub-query in FROM that is not a plain select-project-join is kept.
pub const SUBQUERY_RULE: &str = "maintained as a pg_tide view of its own (in schema tide_state), which this view reads as a base table: its changes reach this view as changes of that table";

/// How ORDER BY ... LIMIT is kept.
pub const TOP_K_RULE: &str = "top-K: the query without its LIMIT is kept whole by an internal view indexed on the ORDER BY keys; when it changes, the view's rows are read again from it through that index (the cost of K rows)";

/// The input of a top-K the engine maintains: the rows of an internal view
/// (see `analyze`, which puts the query under its LIMIT there).
fn top_k_input(node: &Node) -> bool {
    matches!(node, Node::Project { input, .. } if matches!(input.as_ref(), Node::Subquery { standalone: true, .. }))
}

/// How WITH RECURSIVE is kept.
pub const RECURSIVE_RULE: &str = "WITH RECURSIVE: the recursive query is one component, kept by an internal view; inserts into its tables add only the rows they derive (semi-naive evaluation: for a UNION, not UNION ALL, of joins of plain tables, with no aggregates, DISTINCT, LIMIT, window functions, sub-queries, outer joins or volatile functions) and deletes remove only the rows that lose every derivation (delete-and-rederive, where no table occurs twice in a term); updates and other queries compute it again; only the difference (rows gone, rows new) is written, so views over it see just that";

/// How window functions are kept.
pub const WINDOW_RULE: &str = "window functions: the partitions a change touches (their PARTITION BY keys, from the change's rows) leave the view and are recomputed from the query restricted to them";

/// How NOT EXISTS is kept.
pub const ANTI_JOIN_RULE: &str =
    "anti-join as terms: σ¬∃(A) = A − A⋈K, K the distinct keys of the sub-query kept as an internal view; each term bilinear";

/// How an outer join that pads one table is kept.
pub const LOOKUP_JOIN_RULE: &str = "lookup: A⟕B is linear in A (ΔA⟕B); a change of B changes the rows of the join keys it touches: ΔB, plus B's NULL row for a key whose matches went from some to none or back (counted in B by the key)";

/// How an outer join that pads one table on another condition is kept.
pub const LOOKUP_ROW_RULE: &str = "lookup: A⟕B is linear in A (ΔA⟕B); a change of B changes the rows of A it matches (found by a semi-join of A with ΔB): ΔB, plus B's NULL row for a row of A whose matches went from some to none or back (counted in B for that row)";

/// How an outer join is kept.
pub const OUTER_JOIN_RULE: &str =
    "outer join as terms: A⟕B = A⋈B + A×NULL_B − (A⋈K)×NULL_B, K the distinct join keys of B kept as an internal view; each term bilinear";

/// The rule for one operator, given its parent (None at the root).
pub fn maintenance(node: &Node, parent: Option<&Node>) -> Maintenance {
    match node {
        // A statement fires the statement triggers of the table it names
        // only: a change made through an ancestor would be missed by a
        // partition's own triggers, and one through a parent read with ONLY
        // shows its children's rows too.
        Node::Scan { partial_tree: true, .. } => no(
            "a partition, an inheritance child or a parent read with ONLY is not maintained (a statement on an ancestor changes its rows but fires only the ancestor's triggers); a tree read whole from its root is",
        ),
        Node::Scan { .. } => yes("changes from statement transition tables"),
        Node::Join { kind: JoinKind::Inner | JoinKind::Cross, .. } => yes("bilinear: Δ(A⋈B) = ΔA⋈B + A⋈ΔB − ΔA⋈ΔB over new states"),
        Node::Join { kind: JoinKind::Left | JoinKind::Right, keyed: true, lookup: true, .. } => yes(LOOKUP_JOIN_RULE),
        Node::Join { kind: JoinKind::Left | JoinKind::Right, lookup: true, .. } => yes(LOOKUP_ROW_RULE),
        Node::Join { kind: JoinKind::Left | JoinKind::Right | JoinKind::Full, keyed: true, .. } => yes(OUTER_JOIN_RULE),
        Node::Join { kind: kind @ (JoinKind::Left | JoinKind::Right), .. } => no(format!(
            "{} joins are maintained when the padded side is one table or sub-query, or the condition is equalities between the two sides (and conditions on one side), not for this one",
            kind_name(*kind)
        )),
        Node::Join { kind: JoinKind::Full, .. } => no(
            "FULL OUTER joins are maintained when the condition is equalities between the two sides (and conditions on one side), not for this one",
        ),
        Node::Join { kind, .. } => no(format!("{} joins are not maintained yet", kind_name(*kind))),
        Node::Filter { sublinks, .. } if sublinks.iter().any(|s| !s.anti) => {
            let s = sublinks.iter().find(|s| !s.anti).expect("one");
            no(format!(
                "{}{} subqueries here are not maintained yet (EXISTS, IN, ANY and ALL are, anywhere in WHERE and the select list, over a sub-query without aggregates, DISTINCT ON, LIMIT or set operations that refers to the query by equalities in its WHERE (EXISTS also by other conditions, to one table of the query that has a primary key), ANY and ALL with a btree comparison; a grouped sub-query, under IN at the top of WHERE; scalar sub-queries that aggregate without GROUP BY, uncorrelated or referring to the query by equalities in their WHERE)",
                if s.correlated { "correlated " } else { "" },
                s.kind
            ))
        }
        Node::Filter { sublinks, .. } if !sublinks.is_empty() => yes(ANTI_JOIN_RULE),
        Node::Filter { input, .. } if matches!(input.as_ref(), Node::Aggregate { .. }) => {
            yes("HAVING: evaluated on each touched group's new state")
        }
        Node::Filter { .. } => yes("linear: σ(Δ)"),
        Node::Aggregate { grouping_sets: true, .. } => no("GROUPING SETS with an empty set and no aggregate are not maintained yet"),
        Node::Aggregate { aggregates, .. } => {
            let recomputed: Vec<&str> = aggregates
                .iter()
                .filter(|a| recomputed_aggregate(&a.function, a.builtin, a.distinct, a.has_order_by))
                .map(|a| a.sql.as_str())
                .collect();
            let mut rule = String::from(
                "per-group state (counts, sums, sums of squares; a count per value for DISTINCT aggregates) with relative updates; min/max recompute a group that lost its extreme",
            );
            if !recomputed.is_empty() {
                rule.push_str(&format!(
                    "; {}: no running state, so every group a change touches computes it again from the base tables, restricted to the group's key",
                    recomputed.join(", ")
                ));
            }
            yes(&rule)
        }
        Node::Project { sublinks, .. } if !sublinks.is_empty() => no(format!(
            "{}{} subqueries in the select list are not maintained yet (EXISTS, IN, ANY and ALL with a btree comparison, over a sub-query without aggregates, DISTINCT ON, LIMIT or set operations, and scalar sub-queries that aggregate without GROUP BY are, uncorrelated or referring to the query by equalities in their WHERE — to group keys in a grouped query — in a query without window functions or grouping sets)",
            if sublinks[0].correlated { "correlated " } else { "" },
            sublinks[0].kind
        )),
        Node::Project { input, columns, .. } => {
            if let Some(keys) = group_keys(input) {
                if keys.iter().all(|k| columns.iter().any(|c| &c.sql == k)) {
                    yes("output of each touched group, written by its group key")
                } else {
                    yes("output of each touched group: its old row out, its new row in (a GROUP BY key is not a column, so rows are found by value and writers take turns)")
                }
            } else if matches!(parent, Some(Node::Distinct { .. })) {
                yes("linear: π(Δ)")
            } else {
                yes("linear: π(Δ); the bag's copies inserted or deleted")
            }
        }
        Node::Distinct { input, .. } if matches!(input.as_ref(), Node::Project { input, .. } if matches!(input.as_ref(), Node::Window { .. })) => {
            no("DISTINCT over window functions is not maintained yet")
        }
        Node::Distinct { on: None, input } if matches!(input.as_ref(), Node::Project { input, .. } if group_keys(input).is_some()) => {
            no("DISTINCT over GROUP BY is not maintained yet")
        }
        Node::Distinct { on: None, .. } => yes("a count per distinct row; a row appears or goes when its count crosses 0"),
        Node::Distinct { on: Some(keys), input } => match input.as_ref() {
            Node::Project { input, .. } if matches!(input.as_ref(), Node::Window { .. }) || group_keys(input).is_some() => {
                no("DISTINCT ON over GROUP BY or window functions is not maintained yet")
            }
            Node::Project { columns, .. } if keys.iter().all(|k| columns.iter().any(|c| &c.sql == k)) => yes(
                "DISTINCT ON: like a window partition per key: the keys a change touches are recomputed from the query restricted to them",
            ),
            _ => no("DISTINCT ON is maintained when its keys are columns of the view"),
        },
        Node::Window { input, .. } if group_keys(input).is_some() => no("window functions over GROUP BY are not maintained yet"),
        Node::Window { partition: keys, .. } => match parent {
            Some(Node::Project { columns, .. }) if keys.iter().all(|k| columns.iter().any(|c| &c.sql == k)) => yes(if keys.is_empty() {
                "window functions without PARTITION BY: one partition, recomputed on every change"
            } else {
                WINDOW_RULE
            }),
            _ => no("window functions are maintained when their PARTITION BY keys are columns of the view"),
        },
        Node::SetOp { .. } if matches!(parent, Some(Node::SetOp { .. })) => yes("part of the set operation above"),
        Node::SetOp { .. } => match set_operation(node) {
            Ok(rule) => yes(rule),
            Err(reason) => no(reason),
        },
        Node::Sort { limit: None, offset: None, .. } => yes("ORDER BY without LIMIT does not change the rows: ignored"),
        Node::Sort { input, .. } if top_k_input(input) => yes(TOP_K_RULE),
        Node::Sort { .. } => no("ORDER BY ... LIMIT/OFFSET is maintained at the top of a view's query, not here"),
        Node::Subquery { .. } if matches!(parent, Some(Node::SetOp { .. })) => {
            yes("a branch: an internal view of its rows (with the set operation's column names and types), one term of the input")
        }
        Node::Subquery { standalone: false, .. } => {
            no("LATERAL sub-queries are maintained when they are a plain select-project-join, or aggregate without GROUP BY and refer to the items before them by equalities in their WHERE; not this one")
        }
        Node::Subquery { .. } => yes(SUBQUERY_RULE),
        Node::RecursiveCte { .. } => yes(RECURSIVE_RULE),
        Node::WorkTable { .. } => yes("the recursive reference, inside the component"),
        Node::Constant { maintained: true, .. } => {
            yes("never changes itself: VALUES, or a function evaluated for each row of the items it refers to (LATERAL)")
        }
        Node::Constant { .. } => no("ROWS FROM of several functions, and sub-queries without FROM, are not maintained yet"),
    }
}

/// The rule for a set operation at the top of a query, or why it is not
/// maintained: UNION ALL trees; UNION over UNION [ALL]; INTERSECT and EXCEPT
/// of two branches.
fn set_operation(node: &Node) -> Result<&'static str, String> {
    use crate::ir::SetOpKind::*;
    fn all_union(n: &Node, all: Option<bool>) -> bool {
        match n {
            Node::SetOp { op: Union, all: a, left, right } => all.is_none_or(|x| x == *a) && all_union(left, all) && all_union(right, all),
            Node::SetOp { .. } => false,
            _ => true,
        }
    }
    let Node::SetOp { op, all, left, right } = node else { return Err("not a set operation".into()) };
    let leaf = |n: &Node| !matches!(n, Node::SetOp { .. });
    match (op, all) {
        (Union, true) if all_union(node, Some(true)) => Ok("UNION ALL: the sum of its branches, one term each; a bag"),
        (Union, false) if all_union(node, None) => Ok("UNION: a count per distinct row over the sum of its branches"),
        (Intersect | Except, false) if leaf(left) && leaf(right) => {
            Ok("INTERSECT / EXCEPT: per distinct row, a count from each side; the row is in the view while the counts say so")
        }
        (Intersect | Except, true) if leaf(left) && leaf(right) => Ok(
            "INTERSECT ALL / EXCEPT ALL: an internal view of the distinct rows with their count per side; each stands for min(left, right) or left − right copies",
        ),
        _ => Err("this combination of set operations is not maintained yet (UNION ALL trees, UNION over UNION [ALL], INTERSECT [ALL] and EXCEPT [ALL] of two branches are)".into()),
    }
}

/// The GROUP BY keys under a Project (through a HAVING filter), if grouped.
fn group_keys(node: &Node) -> Option<&Vec<String>> {
    match node {
        Node::Aggregate { group_by, .. } => Some(group_by),
        Node::Filter { input, .. } => match input.as_ref() {
            Node::Aggregate { group_by, .. } => Some(group_by),
            _ => None,
        },
        _ => None,
    }
}

fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Left => "LEFT OUTER",
        JoinKind::Right => "RIGHT OUTER",
        JoinKind::Full => "FULL OUTER",
        JoinKind::Semi => "semi",
        JoinKind::Anti => "anti",
        JoinKind::Inner => "inner",
        JoinKind::Cross => "cross",
    }
}

/// The locks maintenance takes, as `tide.explain` shows them. The internal
/// views of sub-queries take their own, as views of their own.
pub fn lock_description(root: &Node) -> String {
    #[derive(Default)]
    struct Seen {
        joins: bool,
        grouped: bool,
        hidden_keys: bool,
        subqueries: bool,
    }
    fn visit(n: &Node, seen: &mut Seen) {
        match n {
            Node::Subquery { standalone: true, .. } => {
                seen.subqueries = true;
                return;
            }
            // Joins, and every shape maintained as several terms or a rewrite of
            // the view's rows: writers take turns (ViewPlan::needs_view_lock).
            Node::Join { .. } | Node::Window { .. } | Node::SetOp { .. } | Node::RecursiveCte { .. } => seen.joins = true,
            Node::Sort { limit, offset, .. } if limit.is_some() || offset.is_some() => seen.joins = true,
            Node::Filter { sublinks, .. } if sublinks.iter().any(|s| s.anti) => seen.joins = true,
            Node::Distinct { on: Some(_), .. } => seen.joins = true,
            Node::Aggregate { .. } | Node::Distinct { .. } => seen.grouped = true,
            Node::Project { input, columns, .. } => {
                if let Some(keys) = group_keys(input) {
                    seen.hidden_keys |= !keys.iter().all(|k| columns.iter().any(|c| &c.sql == k));
                }
            }
            _ => {}
        }
        for c in n.children() {
            visit(c, seen);
        }
    }
    let mut seen = Seen::default();
    visit(root, &mut seen);
    let mut parts = Vec::new();
    if seen.joins || seen.hidden_keys {
        parts.push("a row lock on the view's entry in tide.view_locks: writers of its inputs run their maintenance one after another (under REPEATABLE READ and SERIALIZABLE the second writer gets a serialization failure to retry)");
    }
    if seen.grouped {
        parts.push("row locks on the touched groups' state, in key order");
    } else if !(seen.joins || seen.hidden_keys) {
        parts.push("advisory locks on the distinct rows a change deletes (on their hash buckets when more than 64), in hash order");
    }
    if seen.subqueries {
        parts.push("each sub-query's internal view takes its own locks first");
    }
    parts.join("; ")
}

/// The first operator of the tree that is not maintained, with its reason.
pub fn first_unmaintained(root: &Node) -> Option<(String, String)> {
    fn visit(node: &Node, parent: Option<&Node>) -> Option<(String, String)> {
        let m = maintenance(node, parent);
        if !m.incremental {
            return Some((node.operator(), m.reason.unwrap_or_default()));
        }
        if matches!(node, Node::RecursiveCte { .. }) {
            // Computed again as a whole: whatever is inside.
            return None;
        }
        node.children().into_iter().find_map(|c| visit(c, Some(node)))
    }
    visit(root, None)
}

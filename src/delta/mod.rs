//! Delta rules: for each IR operator, how a change of its inputs becomes a
//! change of its output.
//!
//! The engine issues fill this module, one file per operator family (linear
//! operators, joins, aggregates, ...). Until an operator has a rule here it is
//! maintained by the fallback, a full rebuild of the view on `tide.refresh`,
//! and `tide.explain` says so: a view is never silently wrong, at worst stale
//! until refreshed.

use crate::ir::Node;

/// How one operator is kept up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Whether a change is applied from the change alone (true) or the view is
    /// rebuilt (false).
    pub incremental: bool,
    /// The rule used, as `tide.explain` shows it.
    pub rule: String,
    /// Why the operator is not maintained incrementally, when it is not.
    pub reason: Option<String>,
}

/// The rule for one operator, judged on its own (its inputs are judged separately).
pub fn maintenance(node: &Node) -> Maintenance {
    let _ = node;
    Maintenance {
        incremental: false,
        rule: "full rebuild".into(),
        reason: Some("incremental maintenance is not implemented yet: tide.refresh rebuilds the view".into()),
    }
}
